# Precomputes the results shown in vignette("galaxy-sed"): run from the package root with
#   Rscript vignettes/precompute-galaxy-sed.R
# (about 2.5 minutes on 2 cores; up to 5 when other jobs share them). Writes
# vignettes/galaxy-sed-results.rds, which the vignette loads.
library(nbi)

# ---- the forward model (the same code is shown, and run, in the vignette) ----
bands <- c(u = 0.355, g = 0.469, r = 0.617, i = 0.748, z = 0.893, Y = 1.02, J = 1.25,
           H = 1.65)                                  # effective wavelengths, micron
dist_mod <- function(z) {                             # distance modulus, flat LCDM
  zz <- seq(0, 1, length.out = 1001)                  # (H0 = 70, Omega_m = 0.3)
  dc <- cumsum(c(0, diff(zz) / sqrt(0.3 * (1 + zz[-1])^3 + 0.7)))
  5 * log10((1 + z) * stats::approx(zz, dc, z)$y * 299792.458 / 70) + 25
}
sed_mags <- function(theta) {                         # n x 4 parameters -> n x 8 AB mags
  theta <- matrix(theta, ncol = 4)
  log_mass <- theta[, 1]; z <- theta[, 2]; A_V <- theta[, 3]; log_age <- theta[, 4]
  lam <- outer(1 / (1 + z), bands)                    # rest-frame wavelengths
  slope <- log_age - 8                                # f_nu ~ lam^slope: 0 young, 2 old
  break4000 <- (0.15 + 0.45 * (log_age - 8)) / (1 + exp((lam - 0.4) / 0.015))
  mags <- -20.8 - 2.5 * (log_mass - 10) + 0.8 * (log_age - 9) + dist_mod(z) -
    2.5 * log10(1 + z) - 2.5 * slope * log10(lam / 0.55) + break4000 + A_V * 0.55 / lam
  colnames(mags) <- names(bands)
  mags
}
prior <- nbi_prior(log_mass = prior_uniform(9, 11.5), redshift = prior_uniform(0.05, 0.6),
                   A_V = prior_uniform(0, 2), log_age = prior_uniform(8, 10))
noise <- function(x, theta) {                         # x: n x 8 noise-free magnitudes
  sigma <- matrix(10^stats::runif(length(x), log10(0.02), log10(0.3)), nrow(x))
  cbind(x + sigma * stats::rnorm(length(x)), sigma)   # n x 16: magnitudes, then errors
}
log_lik <- function(x_obs, x_sim, theta, x_err) {     # x_sim: n x 8 noise-free magnitudes
  mag <- x_obs[1:8]
  sigma <- x_obs[9:16]
  colSums(stats::dnorm(t(x_sim), mag, sigma, log = TRUE))
}

timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  v <- force(expr)
  list(value = v, seconds = proc.time()[["elapsed"]] - t0)
}
t_start <- proc.time()[["elapsed"]]

# ---- amortised NPE on 20,000 prior simulations ----
set.seed(2024)
engine <- nbi_engine(sed_mags, prior,
                     featurizer = featurizer_mlp(hidden = c(128, 128), dim_out = 64),
                     flow = flow_maf(blocks = 5, hidden = 64, mixture = 4),
                     noise = noise, log_likelihood = log_lik, vectorized = TRUE)
fitted <- timed(fit(engine, n_sims = 20000, n_epochs = 100, batch_size = 128, lr = 1e-3,
                    patience = 20, verbose = FALSE))
engine <- fitted$value

# ---- one galaxy, observed deep and shallow ----
truth <- c(log_mass = 10.3, redshift = 0.25, A_V = 0.6, log_age = 9.2)
set.seed(11)
sigma_deep <- rep(0.03, 8)
sigma_shallow <- rep(0.25, 8)
x_deep <- c(sed_mags(truth) + sigma_deep * rnorm(8), sigma_deep)
x_shallow <- c(sed_mags(truth) + sigma_shallow * rnorm(8), sigma_shallow)
post_deep <- predict(engine, x_deep, n_samples = 4000)
post_shallow <- predict(engine, x_shallow, n_samples = 4000)

# ---- importance sampling over 300 random galaxies: n_eff and weighted coverage ----
set.seed(12)
theta_test <- sample_prior(prior, 300)
x_test <- noise(sed_mags(theta_test), theta_test)
weighted <- timed(predict(engine, x_test, n_samples = 1000))
posts <- weighted$value
eff <- data.frame(theta_test,
                  n_eff = vapply(posts, `[[`, 0, "n_eff"),
                  efficiency = vapply(posts, `[[`, 0, "efficiency"),
                  pareto_k = vapply(posts, `[[`, 0, "pareto_k"))
# posterior quantile of each truth, u = P(theta < truth | x), without and with the weights
quantile_of_truth <- function(post, truth, w)
  colSums(w * (post$theta < rep(truth, each = nrow(post$theta))))
u_surrogate <- t(vapply(seq_along(posts), function(i)
  quantile_of_truth(posts[[i]], theta_test[i, ], 1 / nrow(posts[[i]]$theta)), numeric(4)))
u_weighted <- t(vapply(seq_along(posts), function(i)
  quantile_of_truth(posts[[i]], theta_test[i, ], posts[[i]]$weights), numeric(4)))

# ---- calibration on fresh prior simulations ----
coverage <- timed(nbi_coverage(engine, n_test = 300, n_samples = 1000, seed = 1))
sbc <- timed(nbi_sbc(engine, n_test = 300, n_samples = 1000, seed = 2))

strip <- function(p) {                                # keep the .rds small
  p$x_obs <- NULL
  p$log_q <- NULL
  p$theta <- signif(p$theta, 6)
  p
}
saveRDS(list(
  fit = list(epochs = engine$history$epochs, rounds = engine$history$rounds,
             seconds = fitted$seconds),
  truth = truth,
  deep = list(x_obs = x_deep, posterior = strip(post_deep)),
  shallow = list(x_obs = x_shallow, posterior = strip(post_shallow)),
  efficiency = eff, weighted_seconds = weighted$seconds,
  u_surrogate = signif(u_surrogate, 4), u_weighted = signif(u_weighted, 4),
  coverage = coverage$value, coverage_seconds = coverage$seconds,
  sbc = sbc$value, sbc_seconds = sbc$seconds,
  seconds = proc.time()[["elapsed"]] - t_start,
  made_with = as.character(utils::packageVersion("nbi")),
  cores = parallel::detectCores()), "vignettes/galaxy-sed-results.rds", compress = "xz")
