# The survey model of vignette("survey-light-curves"): the real event, the cadence, the
# simulator, the noise (drawn afresh for every training batch) and the exact likelihood.
# Sourced by precompute-survey.R (the vignette's results) and pilot-survey.R (trials).

# ---- the real event: OGLE-III I-band photometry of OGLE-2005-BLG-086, 640 epochs ----
file <- "inst/extdata/ogle-2005-blg-086.dat"
if (!file.exists(file)) file <- system.file("extdata", "ogle-2005-blg-086.dat", package = "nbi")
phot <- utils::read.table(file, col.names = c("t", "mag", "err"))   # t: HJD - 2450000
real_mag <- as.matrix(phot)

# ---- an OGLE-like survey: bulge seasons, each object its own cadence ----
# The bulge is observable for about eight months a year: seasons start near HJD 2453060 +
# k years (HJD 2453060 is 2004 February 24). Each object gets its own first season (its
# field joined OGLE-III in 2001, 2002 or 2003), seasons through the survey's end in May 2009
# (the real event's last epochs), its own season edges (weather, +-10 days), its own share
# of epochs per season (fields were observed more or less often from year to year) and 50
# to 1,000 epochs in all.
# (pilot-survey.R may set other ranges of epochs per curve and baseline magnitudes first)
if (!exists("survey_epochs")) survey_epochs <- c(50, 1000)
if (!exists("survey_base")) survey_base <- c(15, 18.5)
cadence <- function() {
  first <- sample(-3:-1, 1)
  k <- first:5
  start <- 3060 + 365.25 * k + stats::rnorm(length(k), 0, 10)
  len <- stats::runif(length(k), 200, 250)
  len[k == 5] <- 4955 - start[k == 5]   # OGLE-III ended in May 2009
  n <- round(exp(stats::runif(1, log(survey_epochs[1]), log(survey_epochs[2]))))
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
  base <- stats::runif(1, survey_base[1], survey_base[2])
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

real <- relative(real_mag)
# the likelihood of relative magnitudes: log Z lower by n log c, c = 10^(0.4 median)
log_z_shift <- nrow(real) * 0.4 * log(10) * stats::median(real_mag[, 2])
