# Precomputes the results shown in vignette("survey-light-curves"): run from the package
# root with
#   Rscript vignettes/precompute-survey.R
# (about 25 minutes on 2 cores, most of it training). Writes vignettes/survey-results.rds,
# which the vignette loads. NBI_SURVEY_SIMS and NBI_SURVEY_EPOCHS shrink the run for a
# quick look. The model (real event, cadence, simulator, noise, likelihood) is in
# vignettes/survey-model.R, the twins of the real event in vignettes/survey-twins.R;
# vignettes/pilot-survey.R runs shorter trials of variants.
library(nbi)
now <- function() proc.time()[["elapsed"]]
t_start <- now()
n_sims <- as.integer(Sys.getenv("NBI_SURVEY_SIMS", "20000"))
epochs <- as.integer(Sys.getenv("NBI_SURVEY_EPOCHS", "80"))

source(if (file.exists("vignettes/survey-model.R")) "vignettes/survey-model.R" else
  system.file("doc", "survey-model.R", package = "nbi"))

engine <- nbi_engine(simulate_event, prior,
                     featurizer = featurizer_timeseries(n_freq = 16, dim_out = 64),
                     flow = flow_maf(blocks = 8, hidden = 64, mixture = 8),
                     noise = observe, log_likelihood = log_lik, simulate_for_likelihood = FALSE,
                     precision = "float32")

# ---- one fit, on simulated events with their own cadences ----
set.seed(1)
t0 <- now()
engine <- fit(engine, n_sims = n_sims, n_epochs = epochs, batch_size = 32, seed = 1, threads = 2,
              verbose = TRUE)
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
# the surrogate alone on the same 20: how much wider than the weighted (exact) posterior
held_sur <- lapply(held_x, function(x)
  summary(predict(engine, x, n_samples = 4000, importance = FALSE, seed = 5, threads = 2)))
held_width <- t(vapply(seq_along(held_post), function(i)
  c(summary(held_post[[i]])$sd, held_sur[[i]]$sd), numeric(6)))
colnames(held_width) <- c("exact_t0", "exact_u0", "exact_tE", "surrogate_t0", "surrogate_u0",
                          "surrogate_tE")
held_table <- data.frame(
  epochs = vapply(held_x, nrow, 1L),
  n_eff = vapply(held_post, function(p) p$n_eff, 0),
  sims = vapply(held_post, function(p) nrow(p$theta), 0L),
  status = vapply(held_post, function(p) p$status, ""),
  ood_p = vapply(held_post, function(p) p$ood_p, 0),
  z_t0 = vapply(seq_along(held_post), function(i) {
    s <- summary(held_post[[i]]); (s$mean[1] - held$theta[i, 1]) / s$sd[1]
  }, 0))

# ---- the real event against the point-lens model, and simulated twins of it ----
source(if (file.exists("vignettes/survey-twins.R")) "vignettes/survey-twins.R" else
  system.file("doc", "survey-twins.R", package = "nbi"))

# ---- coverage to a finer resolution: the band of 200 events is about +-3% at 95% ----
levels4 <- c(0.5, 0.68, 0.9, 0.95)
at_levels <- function(cv) {
  out <- cv$coverage[match(levels4, round(cv$levels, 2)), , drop = FALSE]
  rownames(out) <- levels4
  out
}
# four more sets of 200 (seeds 4 to 7), then one of 4,000 (about +-0.7% at 95%)
coverage_sets <- lapply(4:7, function(s)
  at_levels(suppressWarnings(nbi_coverage(engine, n_test = 200, n_samples = 1000, seed = s,
                                          threads = 2))))
coverage_4000 <- at_levels(suppressWarnings(
  nbi_coverage(engine, n_test = 4000, n_samples = 1000, seed = 11, threads = 2)))

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
            coverage_sets = coverage_sets, coverage_4000 = coverage_4000,
            held = held_table, held_seconds = held_seconds, held_width = held_width,
            misfit = misfit, twins = twins,
            example_curves = held_x[1:3], real = real_mag, log_z_shift = log_z_shift,
            total_minutes = (now() - t_start) / 60)
saveRDS(res, Sys.getenv("NBI_SURVEY_OUT", "vignettes/survey-results.rds"), compress = "xz")
cat(sprintf("done in %.1f minutes\n", res$total_minutes))
