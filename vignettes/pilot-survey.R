# Short trials of variants of vignette("survey-light-curves")'s fit, run from the package
# root:
#   NBI_PILOT=time_params Rscript vignettes/pilot-survey.R
# One fit (10,000 simulations, 30 epochs, 1 thread: about 8 minutes), then the real
# event's surrogate (mean offsets and widths in units of the exact posterior's sd, from
# the quadrature of vignette("real-data-ogle")) and 100 held-out events (surrogate z-scores
# of the true parameters). Variants (NBI_PILOT, comma-separated):
#   time_params  featurizer_timeseries(time_params = "t0", peak = "min")
#   wide         d_model 64, hidden 128, 8 pooling queries (default 32, 64, 4)
#   fresh        the noise function draws new parameters from the prior for every batch and
#                recomputes the magnification at the stored cadence (every batch new events)
#   sharp        200 to 1,000 epochs per curve (not 50) and baselines of 15 to 17 mag (not
#                18.5): the nuisances the curve shows, drawn to make sharp posteriors common
# and NBI_PILOT_SIMS, NBI_PILOT_EPOCHS, NBI_PILOT_BATCH, NBI_PILOT_LR, NBI_PILOT_SEED.
library(nbi)
env <- function(k, default) { v <- Sys.getenv(k, ""); if (nzchar(v)) as.numeric(v) else default }
variants <- strsplit(Sys.getenv("NBI_PILOT", ""), ",")[[1]]
if ("sharp" %in% variants) {   # more epochs, brighter baselines: more sharp posteriors
  survey_epochs <- c(200, 1000)
  survey_base <- c(15, 17)
}
source("vignettes/survey-model.R")

# every batch new events: parameters from the prior, the magnification at the stored epochs
observe_fresh <- function(x, theta) {
  n <- length(x)
  th <- sample_prior(prior, n)
  xs <- lapply(seq_len(n), function(i) {
    s <- x[[i]]
    s[, 2] <- magnification(s[, 1], th[i, 1], th[i, 2], th[i, 3])
    relative(observe_one(s))
  })
  list(x = xs, theta = th)
}
wide <- "wide" %in% variants
featurizer <- featurizer_timeseries(n_freq = 16, dim_out = 64, d_model = if (wide) 64 else 32,
                                    hidden = if (wide) 128 else 64, queries = if (wide) 8 else 4,
                                    time_params = if ("time_params" %in% variants) "t0",
                                    peak = "min")
engine <- nbi_engine(simulate_event, prior, featurizer = featurizer,
                     flow = flow_maf(blocks = 8, hidden = 64, mixture = 8),
                     noise = if ("fresh" %in% variants) observe_fresh else observe,
                     log_likelihood = log_lik, simulate_for_likelihood = FALSE,
                     precision = "float32")
set.seed(1)
t1 <- proc.time()[["elapsed"]]
engine <- fit(engine, n_sims = env("NBI_PILOT_SIMS", 10000), n_epochs = env("NBI_PILOT_EPOCHS", 30),
              batch_size = env("NBI_PILOT_BATCH", 128), lr = env("NBI_PILOT_LR", 1e-3),
              seed = env("NBI_PILOT_SEED", 1), threads = 1, verbose = FALSE)
cat(sprintf("variants: %s; fit %.0f s\n", if (length(variants)) paste(variants, collapse = ",") else "none",
            proc.time()[["elapsed"]] - t1))
q <- readRDS("vignettes/ogle-results.rds")$quad_fine
s <- summary(predict(engine, real, n_samples = 20000, importance = FALSE, seed = 2, threads = 1))
print(data.frame(surrogate_mean = s$mean, surrogate_sd = s$sd, exact_mean = q$mean,
                 exact_sd = q$sd, offset = (s$mean - q$mean) / q$sd, width = s$sd / q$sd))
set.seed(4)
held <- nbi_simulate(engine, 100)
hx <- observe(held$x, held$theta)   # the plain noise: the true parameters stay the truth
ps <- predict(engine, hx, n_samples = 1000, importance = FALSE, seed = 5, threads = 1)
z <- t(vapply(seq_along(ps), function(i) {
  s <- summary(ps[[i]])
  c((s$mean - held$theta[i, ]) / s$sd, s$sd)
}, numeric(6)))
Sys.setenv(NBI_SURVEY_TWINS = Sys.getenv("NBI_SURVEY_TWINS", "10"))
source("vignettes/survey-twins.R")
tc <- twins$catalogued
cat("twins (catalogued noise): median |offset|", signif(apply(abs(tc[, 2:4]), 2, stats::median), 3),
    "; median width", signif(apply(tc[, 5:7], 2, stats::median), 3), "\n")
cat("held-out: median surrogate sd", signif(apply(z[, 4:6], 2, stats::median, na.rm = TRUE), 3),
    "; rms z", signif(sqrt(colMeans(z[, 1:3]^2, na.rm = TRUE)), 3), "\n")
