# Calibration out of the box: light curves with featurizer_resnet_gru() and photometric sets
# with featurizer_set_transformer(n_tokens = ), every network and training setting at its
# default (only the number of simulations is chosen), checked with nbi_coverage() and
# nbi_sbc() on fresh simulations from the prior.
#
#   Rscript bench/defaults.R                 # after R CMD INSTALL .
#   NBI_DEFAULTS_SIMS=20000 Rscript bench/defaults.R
#
# Environment: NBI_DEFAULTS_SIMS (simulations per problem, default 10000), NBI_DEFAULTS_TEST
# (test cases for coverage and SBC, default 300), NBI_DEFAULTS_THREADS (default 2),
# NBI_DEFAULTS_SEED (default 1), NBI_DEFAULTS_EPOCHS and NBI_DEFAULTS_LR (fit()'s n_epochs and
# lr; unset: their defaults),
# NBI_DEFAULTS_PRECISION ("float32" by default: it is the faster path on this kind of CPU;
# "float64" gives the same calibration), NBI_DEFAULTS_PROBLEMS ("sine,sets").
# NBI_BENCH_SMOKE=1: 300 simulations, 2 epochs, 20 tests (seconds: CI checks the script).
#
# 1. Light curve: the sine problem of the nbi paper (seed 000): 50 points on [0, 1], noise sd
#    0.1, phi0 ~ U(0, 2 pi), A ~ U(-4, 4), omega ~ U(2 pi, 12 pi). Its posterior is bimodal
#    (A and phi0 trade sign for a half turn), which central intervals and ranks still test.
# 2. Photometric set: a black body (log10 T ~ U(3.5, 4.3), magnitude offset ~ U(-1, 1)) seen
#    in a random 3-8 of 10 bands, each with its own error in U(0.02, 0.1) mag.
suppressPackageStartupMessages(library(nbi))

env_num <- function(name, default) as.numeric(Sys.getenv(name, default))
if (identical(Sys.getenv("NBI_BENCH_SMOKE"), "1"))
  Sys.setenv(NBI_DEFAULTS_SIMS = "300", NBI_DEFAULTS_TEST = "20", NBI_DEFAULTS_EPOCHS = "2")
n_sims <- env_num("NBI_DEFAULTS_SIMS", 10000)
n_test <- env_num("NBI_DEFAULTS_TEST", 300)
threads <- env_num("NBI_DEFAULTS_THREADS", 2)
precision <- Sys.getenv("NBI_DEFAULTS_PRECISION", "float32")
seed <- env_num("NBI_DEFAULTS_SEED", 1)
epochs <- Sys.getenv("NBI_DEFAULTS_EPOCHS", "")
lr <- Sys.getenv("NBI_DEFAULTS_LR", "")
fit_args <- c(if (nzchar(epochs)) list(n_epochs = as.integer(epochs)),
              if (nzchar(lr)) list(lr = as.numeric(lr)))
problems <- strsplit(Sys.getenv("NBI_DEFAULTS_PROBLEMS", "sine,sets"), ",")[[1]]

t_grid <- seq(0, 1, length.out = 50)
sine_engine <- function() {
  sine <- function(theta) {
    theta <- matrix(theta, ncol = 3)
    theta[, 2] * sin(outer(theta[, 3], t_grid) + theta[, 1])
  }
  prior <- nbi_prior(phi0 = prior_uniform(0, 2 * pi), A = prior_uniform(-4, 4),
                     omega = prior_uniform(2 * pi, 12 * pi))
  nbi_engine(sine, prior, featurizer = featurizer_resnet_gru(), noise = 0.1,
             vectorized = TRUE, precision = precision)
}

lambda <- seq(0.35, 2.2, length.out = 10)                 # band centres, micron
sets_engine <- function() {
  bb_mag <- function(theta, band) {
    temp <- 10^theta[["logT"]]
    planck <- lambda[band]^-5 / expm1(14388 / (lambda[band] * temp))
    ref <- lambda[5]^-5 / expm1(14388 / (lambda[5] * 5000))
    theta[["scale"]] - 2.5 * log10(planck / ref)
  }
  sim <- function(theta) {
    band <- sort(sample(10, sample(3:8, 1)))
    cbind(band = band, mag = bb_mag(theta, band), err = stats::runif(length(band), 0.02, 0.1))
  }
  noise <- function(x, theta) lapply(x, function(s) {
    s[, 2] <- s[, 2] + stats::rnorm(nrow(s), sd = s[, 3])
    s
  })
  prior <- nbi_prior(logT = prior_uniform(3.5, 4.3), scale = prior_uniform(-1, 1))
  nbi_engine(sim, prior, featurizer = featurizer_set_transformer(n_tokens = 10),
             noise = noise, precision = precision)
}

run_problem <- function(name, engine) {
  cat(sprintf("\n== %s: %s, %s, %g simulations, %d threads, %s%s%s ==\n", name,
              format(engine$featurizer$type), "flow_maf() defaults", n_sims, threads,
              precision, if (nzchar(epochs)) paste0(", n_epochs = ", epochs) else "",
              if (nzchar(lr)) paste0(", lr = ", lr) else ""))
  t0 <- proc.time()[["elapsed"]]
  engine <- do.call(fit, c(list(engine, n_sims = n_sims, threads = threads, seed = seed,
                               verbose = FALSE), fit_args))
  t_fit <- proc.time()[["elapsed"]] - t0
  ep <- engine$history$epochs
  cat(sprintf("fit: %.0f s, %d epochs (best validation loss %.3f at epoch %d), %.0f samples/s\n",
              t_fit, nrow(ep), min(ep$valid_loss), which.min(ep$valid_loss),
              nrow(ep) * n_sims * 0.9 / t_fit))
  t0 <- proc.time()[["elapsed"]]
  cov <- nbi_coverage(engine, n_test = n_test, n_samples = 1000, seed = seed + 1,
                      threads = threads)
  sbc <- nbi_sbc(engine, n_test = n_test, n_samples = 1000, seed = seed + 2, threads = threads)
  cat(sprintf("coverage and SBC on %d fresh simulations each: %.0f s\n", n_test,
              proc.time()[["elapsed"]] - t0))
  print(cov)
  print(sbc)
  invisible(list(engine = engine, coverage = cov, sbc = sbc))
}

cat("nbi default-settings calibration |", R.version.string, "| BLAS:",
    extSoftVersion()[["BLAS"]], "\n")
set.seed(seed)
if ("sine" %in% problems) res_sine <- run_problem("light curve (sine, 50 points)", sine_engine())
if ("sets" %in% problems) res_sets <- run_problem("photometric sets (black body, 3-8 of 10 bands)",
                                                  sets_engine())
