# Precomputes the fit shown in vignette("microlensing"): run from the package root with
#   Rscript vignettes/precompute-microlensing.R
# (about 9 minutes on 2 cores). Writes vignettes/microlensing-results.rds, which the
# vignette loads.
library(nbi)
t0_wall <- proc.time()[["elapsed"]]

# ---- the forward model: a single-lens (Paczynski) event seen once a night for 100 nights
t_grid <- 0:99          # days
snr_base <- 20          # signal-to-noise of one measurement at the baseline flux
paczynski <- function(theta) {   # n x 4 parameters in, n x 100 noise-free fluxes out
  theta <- matrix(theta, ncol = 4)
  u0 <- 10^theta[, 2]
  tE <- 10^theta[, 3]
  fs <- 10^theta[, 4]
  tau <- outer(-theta[, 1], t_grid, "+") / tE
  u2 <- u0^2 + tau^2
  A <- (u2 + 2) / sqrt(u2 * (u2 + 4))        # magnification
  fs * A + (1 - fs)                          # flux in units of the baseline flux
}
prior <- nbi_prior(t0 = prior_uniform(10, 90),
                   log10_u0 = prior_uniform(-2, 0),
                   log10_tE = prior_truncnormal(1.15, 0.45, 0.5, 2),
                   log10_fs = prior_uniform(-1, 0))
# photon noise (Gaussian limit of Poisson counts: sd = sqrt(flux) / snr_base), drawn afresh
# for every training epoch; the network sees magnitudes relative to the baseline
photon_noise <- function(flux, theta) {
  noisy <- flux + sqrt(flux) / snr_base * matrix(stats::rnorm(length(flux)), nrow(flux))
  -2.5 * log10(noisy)
}
# the exact log-likelihood of observed magnitudes x_obs given noise-free fluxes x_sim (one
# row per parameter set): Gaussian in flux, times the Jacobian |dF/dm| of the magnitudes
log_lik <- function(x_obs, x_sim, theta, x_err) {
  x_sim <- matrix(x_sim, ncol = length(t_grid))
  f_obs <- 10^(-0.4 * x_obs)
  sd <- sqrt(x_sim) / snr_base
  z <- sweep(x_sim, 2, f_obs) / sd
  -0.5 * rowSums(z^2) - rowSums(log(sd)) - 0.5 * length(x_obs) * log(2 * pi) +
    sum(log(0.4 * log(10) * f_obs))
}

# ---- amortised NPE with a ResNet-GRU featurizer on 20,000 prior simulations
set.seed(2021)
engine <- nbi_engine(paczynski, prior,
                     featurizer = featurizer_resnet_gru(depth = 4, dim_conv_min = 16,
                                                        dim_conv_max = 64, n_rnn = 1,
                                                        dim_out = 64),
                     flow = flow_maf(blocks = 5, hidden = 64, mixture = 4),
                     noise = photon_noise, log_likelihood = log_lik, vectorized = TRUE)
t_fit <- proc.time()[["elapsed"]]
engine <- fit(engine, n_sims = 20000, n_epochs = 25, batch_size = 32, lr = 1e-3)
fit_seconds <- proc.time()[["elapsed"]] - t_fit

# ---- two held-out events
observe <- function(truth) drop(photon_noise(paczynski(truth), truth))
truth_a <- c(t0 = 45, log10_u0 = -1, log10_tE = log10(20), log10_fs = log10(0.5))
truth_b <- c(t0 = 55, log10_u0 = log10(0.6), log10_tE = log10(25), log10_fs = log10(0.3))
x_a <- observe(truth_a)
x_b <- observe(truth_b)
post_a <- predict(engine, x_a, n_samples = 5000)
post_b <- predict(engine, x_b, n_samples = 5000)
surrogate_a <- predict(engine, x_a, n_samples = 5000, importance = FALSE)
surrogate_b <- predict(engine, x_b, n_samples = 5000, importance = FALSE)

# ---- 40 more test events from the prior, in one batched call
theta_test <- sample_prior(prior, 40)
x_test <- photon_noise(paczynski(theta_test), theta_test)
t_pred <- proc.time()[["elapsed"]]
posts <- predict(engine, x_test, n_samples = 5000)
pred_seconds <- proc.time()[["elapsed"]] - t_pred
# where each truth falls in its weighted posterior (0.05-0.95: inside the 90% interval)
rank_of_truth <- t(vapply(seq_along(posts), function(i) {
  p <- posts[[i]]
  colSums(p$weights * sweep(p$theta, 2, theta_test[i, ], "<"))
}, numeric(4)))
test <- data.frame(theta_test,
                   n_eff = vapply(posts, `[[`, 0, "n_eff"),
                   efficiency = vapply(posts, `[[`, 0, "efficiency"),
                   pareto_k = vapply(posts, `[[`, 0, "pareto_k"))
colnames(rank_of_truth) <- paste0("q_", colnames(theta_test))
test <- cbind(test, rank_of_truth)

# ---- keep the .rds small: drop what the vignette does not use and round the draws to
# 24 significant bits (~7 digits), which compresses well
round_bits <- function(v, bits = 24) {
  e <- 2^(floor(log2(abs(v) + (v == 0))) - bits)
  round(v / e) * e
}
compact <- function(p) {
  p$theta[] <- round_bits(p$theta)
  if (!is.null(p$weights)) p$weights <- round_bits(p$weights)
  p$x_obs <- p$log_q <- p$log_weights <- NULL
  p
}
surrogate_stats <- function(s) list(summary = summary(s), cor = stats::cor(s$theta))
saveRDS(list(
  epochs = engine$history$epochs, fit_seconds = fit_seconds, pred_seconds = pred_seconds,
  a = list(truth = truth_a, x_obs = x_a, posterior = compact(post_a),
           surrogate = surrogate_stats(surrogate_a)),
  b = list(truth = truth_b, x_obs = x_b, posterior = compact(post_b),
           surrogate = surrogate_stats(surrogate_b)),
  test = test,
  seconds = proc.time()[["elapsed"]] - t0_wall,
  made_with = as.character(utils::packageVersion("nbi")),
  cores = parallel::detectCores()), "vignettes/microlensing-results.rds", compress = "xz")
