# Precomputes the results shown in vignette("survey-light-curves"): run from the package
# root with
#   Rscript vignettes/precompute-survey.R
# (56 minutes on 2 cores shared with other jobs, most of it training). Writes vignettes/survey-results.rds, which
# the vignette loads. NBI_SURVEY_SIMS and NBI_SURVEY_EPOCHS shrink the run for a quick look.
library(nbi)
now <- function() proc.time()[["elapsed"]]
t_start <- now()
n_sims <- as.integer(Sys.getenv("NBI_SURVEY_SIMS", "20000"))
epochs <- as.integer(Sys.getenv("NBI_SURVEY_EPOCHS", "80"))

# ---- the real event: OGLE-III I-band photometry of OGLE-2005-BLG-086, 640 epochs ----
file <- "inst/extdata/ogle-2005-blg-086.dat"
if (!file.exists(file)) file <- system.file("extdata", "ogle-2005-blg-086.dat", package = "nbi")
phot <- utils::read.table(file, col.names = c("t", "mag", "err"))   # t: HJD - 2450000
real_mag <- as.matrix(phot)

# ---- an OGLE-like survey: bulge seasons, each object its own cadence ----
# The bulge is observable for about eight months a year: seasons start near HJD 2453060 +
# k years. Each object gets its own first season (its field joined the survey between 2002
# and 2004), its own season edges (weather, +-10 days), its own share of epochs per season
# (fields were observed more or less often from year to year) and 50 to 1,000 epochs in all.
cadence <- function() {
  first <- sample(-3:-1, 1)
  k <- first:4
  start <- 3060 + 365.25 * k + stats::rnorm(length(k), 0, 10)
  len <- stats::runif(length(k), 200, 250)
  n <- round(exp(stats::runif(1, log(50), log(1000))))
  share <- stats::rgamma(length(k), 1.5)
  season <- sample(seq_along(k), n, replace = TRUE, prob = share)
  sort(start[season] + len[season] * stats::runif(n))
}
magnification <- function(t, t0, u0, tE) {
  u2 <- u0^2 + ((t - t0) / tE)^2
  (u2 + 2) / sqrt(u2 * (u2 + 4))
}
prior <- nbi_prior(t0 = prior_uniform(3600, 3660),   # days (HJD - 2450000)
                   u0 = prior_uniform(0.01, 1),
                   tE = prior_uniform(20, 200))      # days
# the simulator: a cadence and the magnification at its epochs (t, A)
simulate_event <- function(theta) {
  t <- cadence()
  cbind(t, magnification(t, theta[["t0"]], theta[["u0"]], theta[["tE"]]))
}
# the cheap part, drawn afresh for every training batch: the baseline magnitude and the
# source's share of the baseline flux (blending), magnitudes with errors from an OGLE-like
# error model (photon noise growing with magnitude, a floor, seeing from night to night,
# a per-object factor), and a small offset per observing season
err_model <- function(mag) sqrt(0.002^2 + (0.0085 * 10^(0.2 * (mag - 16.3)))^2)
observe_one <- function(s) {
  base <- stats::runif(1, 15, 18.5)
  fs <- stats::runif(1, 0.2, 1)
  mag <- base - 2.5 * log10(fs * s[, 2] + 1 - fs)
  err <- err_model(mag) * stats::runif(1, 0.8, 1.25) * exp(stats::rnorm(nrow(s), 0, 0.15))
  season <- cumsum(c(1, diff(s[, 1]) > 60))
  offset <- stats::rnorm(max(season), 0, 0.003)[season]
  cbind(s[, 1], mag + offset + err * stats::rnorm(nrow(s)), round(err, 3) + 0.0005)
}
# the network reads magnitudes relative to each curve's median: the baseline brightness says
# nothing about t0, u0 or tE, and without it every epoch shows at once whether it is
# magnified (the likelihood below does not change: the profiled fluxes absorb the shift)
relative <- function(s) {
  s[, 2] <- s[, 2] - stats::median(s[, 2])
  s
}
observe <- function(x, theta) lapply(x, function(s) relative(observe_one(s)))

# the exact likelihood at the observation's own epochs, Gaussian in flux with the
# catalogued errors; source and blend fluxes enter linearly and are profiled out by weighted
# least squares; it needs theta alone, so predict() runs no simulations
flux <- function(mag) 10^(-0.4 * (mag - 22))
log_lik <- function(x_obs, x_sim, theta, x_err) {
  theta <- matrix(theta, ncol = 3)
  f_obs <- flux(x_obs[, 2])
  f_err <- f_obs * 0.4 * log(10) * x_obs[, 3]
  w <- 1 / f_err^2
  u2 <- theta[, 2]^2 + (outer(-theta[, 1], x_obs[, 1], "+") / theta[, 3])^2
  A <- (u2 + 2) / sqrt(u2 * (u2 + 4))
  Sa <- drop(A %*% w); Saa <- drop(A^2 %*% w); Say <- drop(A %*% (w * f_obs))
  Sw <- sum(w); Sy <- sum(w * f_obs); Syy <- sum(w * f_obs^2)
  det <- Saa * Sw - Sa^2
  fs <- (Say * Sw - Sa * Sy) / det
  fb <- (Saa * Sy - Sa * Say) / det
  chi2 <- Syy - 2 * fs * Say - 2 * fb * Sy + fs^2 * Saa + 2 * fs * fb * Sa + fb^2 * Sw
  -0.5 * chi2 - sum(log(sqrt(2 * pi) * f_err))
}

engine <- nbi_engine(simulate_event, prior,
                     featurizer = featurizer_timeseries(n_freq = 16, dim_out = 64),
                     flow = flow_maf(blocks = 8, hidden = 64, mixture = 8),
                     noise = observe, log_likelihood = log_lik, simulate_for_likelihood = FALSE,
                     precision = "float32")

real <- relative(real_mag)
# the likelihood of relative magnitudes: log Z lower by n log c, c = 10^(0.4 median)
log_z_shift <- nrow(real) * 0.4 * log(10) * stats::median(real_mag[, 2])

# ---- one fit, on simulated events with their own cadences ----
set.seed(1)
t0 <- now()
engine <- fit(engine, n_sims = n_sims, n_epochs = epochs, seed = 1, threads = 2, verbose = TRUE)
if (nzchar(Sys.getenv("NBI_SURVEY_ENGINE"))) saveRDS(engine, Sys.getenv("NBI_SURVEY_ENGINE"))
fit_seconds <- now() - t0
set.seed(9)
sim_epochs <- summary(vapply(nbi_simulate(engine, 200)$x, nrow, 1L))

# ---- the real event: surrogate, plain importance sampling, escalation to n_eff = 2000 ----
surrogate <- predict(engine, real, n_samples = 20000, importance = FALSE, seed = 2, threads = 2)
t0 <- now()
plain <- suppressWarnings(predict(engine, real, n_samples = 20000, seed = 2, threads = 2))
plain_seconds <- now() - t0
t0 <- now()
post <- predict(engine, real, n_samples = 2000, n_eff = 2000, seed = 2, threads = 2)
post_seconds <- now() - t0

# the same posterior by 3-D quadrature (vignette("real-data-ogle") computes it; the same data,
# prior and likelihood) and the emcee fit of MulensModel's example 16
ogle <- readRDS(if (file.exists("vignettes/ogle-results.rds")) "vignettes/ogle-results.rds" else
  system.file("doc", "ogle-results.rds", package = "nbi"))
quad <- ogle$quad_fine
emcee <- ogle$emcee

# ---- 200 held-out simulated events, each with its own cadence ----
t0 <- now()
coverage <- nbi_coverage(engine, n_test = 200, n_samples = 1000, seed = 3, threads = 2)
coverage_seconds <- now() - t0
# and the trust step on 20 of them: n_eff = 1000 each
set.seed(4)
held <- nbi_simulate(engine, 20)
held_x <- observe(held$x, held$theta)
t0 <- now()
held_post <- lapply(held_x, function(x)
  suppressWarnings(predict(engine, x, n_samples = 1000, n_eff = 1000, seed = 5, threads = 2)))
held_seconds <- now() - t0
held_table <- data.frame(
  epochs = vapply(held_x, nrow, 1L),
  n_eff = vapply(held_post, function(p) p$n_eff, 0),
  sims = vapply(held_post, function(p) nrow(p$theta), 0L),
  z_t0 = vapply(seq_along(held_post), function(i) {
    s <- summary(held_post[[i]]); (s$mean[1] - held$theta[i, 1]) / s$sd[1]
  }, 0))

summ <- function(p) { s <- summary(p); data.frame(mean = s$mean, sd = s$sd) }
res <- list(made_with = as.character(utils::packageVersion("nbi")), cores = 2L,
            n_sims = n_sims, epochs = epochs, fit_seconds = fit_seconds,
            history = engine$history, sim_epochs = sim_epochs,
            engine_print = utils::capture.output(print(engine)),
            surrogate = summ(surrogate), plain = summ(plain), plain_n_eff = plain$n_eff,
            plain_seconds = plain_seconds,
            post = summ(post), post_n_eff = post$n_eff, post_sims = nrow(post$theta),
            post_seconds = post_seconds, post_print = utils::capture.output(print(post)),
            post_log_z = post$log_evidence, post_log_z_se = post$log_evidence_se,
            post_theta = nbi_resample(post, 2000)$theta,
            quad = quad, emcee = emcee,
            coverage = coverage, coverage_seconds = coverage_seconds,
            held = held_table, held_seconds = held_seconds,
            example_curves = held_x[1:3], real = real_mag, log_z_shift = log_z_shift,
            total_minutes = (now() - t_start) / 60)
saveRDS(res, Sys.getenv("NBI_SURVEY_OUT", "vignettes/survey-results.rds"), compress = "xz")
cat(sprintf("done in %.1f minutes\n", res$total_minutes))
