# Precomputes the fits shown in vignette("getting-started"): run from the package root with
#   Rscript vignettes/precompute-sine.R
# (about 4 minutes on 2 cores). Writes vignettes/sine-results.rds, which the vignette loads.
library(nbi)
t_grid <- seq(0, 1, length.out = 50)
sine <- function(theta) {
  theta <- matrix(theta, ncol = 3)
  theta[, 2] * sin(outer(theta[, 3], t_grid) + theta[, 1])
}
prior <- nbi_prior(phi0 = prior_uniform(0, 2 * pi), A = prior_uniform(-4, 4),
                   omega = prior_uniform(2 * pi, 12 * pi))
timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  v <- force(expr)
  list(value = v, seconds = proc.time()[["elapsed"]] - t0)
}

# amortised NPE on 20,000 prior simulations
set.seed(2023)
engine <- nbi_engine(sine, prior, featurizer = featurizer_mlp(hidden = c(128, 128), dim_out = 64),
                     flow = flow_maf(blocks = 5, hidden = 64, mixture = 4), noise = 0.1,
                     vectorized = TRUE)
amortised <- timed(fit(engine, n_sims = 20000, n_epochs = 100, batch_size = 128, lr = 1e-3,
                       patience = 20, verbose = FALSE))
truth_a <- c(phi0 = 1.2, A = 2.5, omega = 7 * pi)
x_a <- drop(sine(matrix(truth_a, 1))) + stats::rnorm(50, sd = 0.1)
post_a <- predict(amortised$value, x_a, n_samples = 5000)

# SNPE-IS at the Python demo's truth
truth_s <- c(phi0 = 6.076027676094974, A = 0.377857993405779, omega = 36.840965702453289)
set.seed(4)
x_s <- drop(sine(matrix(truth_s, 1))) + stats::rnorm(50, sd = 0.1)
seq_engine <- nbi_engine(sine, prior, featurizer = featurizer_mlp(hidden = c(128, 128), dim_out = 64),
                         flow = flow_maf(blocks = 5, hidden = 128, mixture = 4), noise = 0.1,
                         vectorized = TRUE)
snpe <- timed(fit(seq_engine, n_sims = 2560, n_rounds = 5, n_epochs = 300, x_obs = x_s,
                  batch_size = 128, lr = 5e-4, patience = 50, n_reuse = 1, verbose = FALSE))
post_s <- predict(snpe$value, x_s, n_samples = 10000)

strip <- function(p) { p$x_obs <- NULL; p }
saveRDS(list(
  amortised = list(epochs = amortised$value$history$epochs, seconds = amortised$seconds,
                   truth = truth_a, x_obs = x_a, posterior = strip(post_a)),
  snpe = list(rounds = snpe$value$history$rounds, seconds = snpe$seconds, truth = truth_s,
              x_obs = x_s, posterior = strip(post_s)),
  made_with = as.character(utils::packageVersion("nbi")),
  cores = parallel::detectCores()), "vignettes/sine-results.rds", compress = "xz")
