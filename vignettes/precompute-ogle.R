# Precomputes the results shown in vignette("real-data-ogle"): run from the package root with
#   Rscript vignettes/precompute-ogle.R
# (a few minutes on 2 cores). Writes vignettes/ogle-results.rds, which the vignette loads.
library(nbi)
t0_wall <- proc.time()[["elapsed"]]
now <- function() proc.time()[["elapsed"]]

# ---- the data: OGLE-III I-band photometry of OGLE-2005-BLG-086, 640 epochs ----
file <- "inst/extdata/ogle-2005-blg-086.dat"
if (!file.exists(file)) file <- system.file("extdata", "ogle-2005-blg-086.dat", package = "nbi")
phot <- utils::read.table(file, col.names = c("t", "mag", "err"))   # t: HJD - 2450000

# ---- the model: a point-source point-lens (Paczynski) event with blending ----
magnification <- function(t, t0, u0, tE) {   # rows: parameter sets, columns: epochs
  u2 <- u0^2 + (outer(-t0, t, "+") / tE)^2
  (u2 + 2) / sqrt(u2 * (u2 + 4))
}
flux <- function(mag) 10^(-0.4 * (mag - 22))
prior <- nbi_prior(t0 = prior_uniform(3600, 3660),   # days (HJD - 2450000)
                   u0 = prior_uniform(0.01, 1),
                   tE = prior_uniform(20, 200))      # days
# the expensive part: noise-free magnitudes at the 640 epochs; the baseline magnitude and
# the source's share of the baseline flux are nuisance parameters drawn per simulation
simulate_event <- function(theta) {
  theta <- matrix(theta, ncol = 3)
  n <- nrow(theta)
  base <- stats::runif(n, 16, 16.6)
  fs <- stats::runif(n, 0.3, 1)
  A <- magnification(phot$t, theta[, 1], theta[, 2], theta[, 3])
  22 - 2.5 * log10(flux(base) * (fs * A + 1 - fs))
}
# the cheap part, drawn afresh for every training batch: Gaussian errors as catalogued
# (scaled by a factor between 1 and 1.5), plus a small offset and drift per observing
# season: real photometry carries both, and a network that never saw them reads them as
# signal
season <- cumsum(c(1, diff(phot$t) > 100))
t_mid <- stats::ave(phot$t, season)
observe <- function(x, theta) {
  n <- nrow(x)
  k <- max(season)
  scale <- stats::runif(n, 1, 1.5)
  offset <- matrix(stats::rnorm(n * k, sd = 0.01), n)[, season, drop = FALSE]
  drift <- matrix(stats::rnorm(n * k, sd = 1e-4), n)[, season, drop = FALSE]
  x + offset + drift * rep(phot$t - t_mid, each = n) +
    matrix(stats::rnorm(length(x)), n) * outer(scale, phot$err)
}
# the exact likelihood, Gaussian in flux with the catalogued errors; the source and blend
# fluxes enter linearly and are profiled out by weighted least squares (as MulensModel
# fits them); vectorised over the rows of theta
f_obs <- flux(phot$mag)
f_err <- f_obs * 0.4 * log(10) * phot$err
log_lik <- function(x_obs, x_sim, theta, x_err) {
  theta <- matrix(theta, ncol = 3)
  w <- 1 / f_err^2
  A <- magnification(phot$t, theta[, 1], theta[, 2], theta[, 3])
  Sa <- drop(A %*% w); Saa <- drop(A^2 %*% w); Say <- drop(A %*% (w * f_obs))
  Sw <- sum(w); Sy <- sum(w * f_obs); Syy <- sum(w * f_obs^2)
  det <- Saa * Sw - Sa^2
  fs <- (Say * Sw - Sa * Sy) / det
  fb <- (Saa * Sy - Sa * Say) / det
  chi2 <- Syy - 2 * fs * Say - 2 * fb * Sy + fs^2 * Saa + 2 * fs * fb * Sa + fb^2 * Sw
  -0.5 * chi2 - sum(log(sqrt(2 * pi) * f_err))
}

engine <- nbi_engine(simulate_event, prior, featurizer = featurizer_mlp(), noise = observe,
                     log_likelihood = log_lik, vectorized = TRUE, precision = "float32")

# ---- amortised fit on 10^4 simulations ----
t0 <- now()
engine <- fit(engine, n_sims = 10000, seed = 1, threads = 2, verbose = FALSE)
fit_seconds <- now() - t0

# ---- the surrogate alone, plain importance sampling, and escalation to n_eff = 2000 ----
surrogate <- predict(engine, phot$mag, n_samples = 20000, importance = FALSE, seed = 2,
                     threads = 2)
t0 <- now()
plain <- suppressWarnings(predict(engine, phot$mag, n_samples = 20000, seed = 2, threads = 2))
plain_seconds <- now() - t0
t0 <- now()
post <- predict(engine, phot$mag, n_samples = 2000, n_eff = 2000, seed = 2, threads = 2)
post_seconds <- now() - t0

# ---- the exact answer: a 3-D quadrature of the same posterior ----
s <- summary(post)
quadrature <- function(G, half = 8) {
  ax <- lapply(1:3, function(j) s$mean[j] + s$sd[j] * seq(-half, half, length.out = G))
  grid <- as.matrix(expand.grid(ax))
  ll <- unlist(lapply(split(seq_len(nrow(grid)), ceiling(seq_len(nrow(grid)) / 5000)),
                      function(i) log_lik(NULL, NULL, grid[i, ], NULL)))
  cell <- prod(vapply(ax, function(a) diff(a[1:2]), 0))
  m <- max(ll)
  w <- exp(ll - m)
  log_z <- m + log(sum(w) * cell) + log_prior(prior, matrix(s$mean, 1))   # flat prior density
  w <- w / sum(w)
  mean <- stats::setNames(colSums(w * grid), prior$names)
  list(G = G, mean = mean, sd = sqrt(colSums(w * sweep(grid, 2, mean)^2)), log_z = log_z,
       edge = sum(w[apply(grid, 1, function(r) any(r %in% unlist(lapply(ax, range))))]),
       cdf = lapply(1:3, function(j) {   # the marginal cdf at the cells' upper edges
         mj <- tapply(w, grid[, j], sum)
         list(x = as.numeric(names(mj)) + diff(ax[[j]][1:2]) / 2, p = cumsum(mj))
       }))
}
t0 <- now()
quad <- quadrature(61)
quad_fine <- quadrature(91)
quad_seconds <- now() - t0
quad_q <- vapply(quad_fine$cdf, function(c) stats::approx(c$p, c$x, c(0.16, 0.5, 0.84), ties = mean)$y,
                 numeric(3))

# the emcee fit of MulensModel's example 16 (medians and 68% intervals, t0 in HJD)
emcee <- data.frame(parameter = c("t0", "u0", "tE"),
                    median = c(2453628.27945 - 2450000, 0.37463, 101.97260),
                    plus = c(0.13479, 0.00949, 1.61987), minus = c(0.13882, 0.00927, 1.58354))

wq <- function(p, probs) vapply(1:3, function(j)
  nbi:::weighted_quantile(p$theta[, j], p$weights, probs), numeric(length(probs)))

# ---- the same network on light curves simulated at the posterior mean: 20 of them, with
# the training noise; offsets of the surrogate's means in units of its own sds ----
set.seed(4)
theta_ref <- matrix(quad_fine$mean, 20, 3, byrow = TRUE)
x_ref <- observe(simulate_event(theta_ref), theta_ref)
sims_ref <- predict(engine, x_ref, n_samples = 5000, importance = FALSE, seed = 5, threads = 2)
z_ref <- t(vapply(sims_ref, function(p) {
  s <- summary(p)
  (s$mean - quad_fine$mean) / s$sd
}, numeric(3)))
colnames(z_ref) <- prior$names

# ---- residuals of the best fit: what the point-lens model leaves in the data ----
best <- post$theta[which.max(post$log_weights), ]
A_best <- drop(magnification(phot$t, best[1], best[2], best[3]))
X <- cbind(A_best, 1)
fl <- drop(solve(crossprod(X / f_err), crossprod(X / f_err, f_obs / f_err)))
resid <- (f_obs - X %*% fl) / f_err
season_resid <- data.frame(season = seq_len(max(season)),
                           from = tapply(phot$t, season, min), to = tapply(phot$t, season, max),
                           n = as.vector(table(season)),
                           mean = as.vector(tapply(resid, season, mean)),
                           sd = as.vector(tapply(resid, season, stats::sd)))

# ---- posterior light curves for the plot: 50 draws, fluxes profiled at each ----
set.seed(3)
draws <- nbi_resample(post, 50)$theta
t_fine <- seq(3300, 4000, by = 1)
curves <- t(apply(draws, 1, function(th) {
  A <- drop(magnification(phot$t, th[1], th[2], th[3]))
  X <- cbind(A, 1)
  f <- drop(solve(crossprod(X / f_err), crossprod(X / f_err, f_obs / f_err)))
  22 - 2.5 * log10(f[1] * drop(magnification(t_fine, th[1], th[2], th[3])) + f[2])
}))

res <- list(
  made_with = as.character(utils::packageVersion("nbi")), cores = 2,
  seconds = now() - t0_wall, fit_seconds = fit_seconds,
  epochs = nrow(engine$history$epochs), best_epoch = which.min(engine$history$epochs$valid_loss),
  valid_loss = min(engine$history$epochs$valid_loss),
  surrogate = summary(surrogate), z_ref = z_ref, plain = list(
    n_eff = plain$n_eff, efficiency = plain$efficiency, pareto_k = plain$pareto_k,
    log_evidence = plain$log_evidence, log_evidence_se = plain$log_evidence_se,
    seconds = plain_seconds),
  post = list(summary = summary(post), rounds = post$rounds, n_eff = post$n_eff,
              efficiency = post$efficiency, pareto_k = post$pareto_k,
              log_evidence = post$log_evidence, log_evidence_se = post$log_evidence_se,
              status = post$status, n_sims = post$n_sims, seconds = post_seconds,
              ood_p = post$ood_p, quantiles = wq(post, c(0.16, 0.5, 0.84))),
  quad = quad[c("G", "mean", "sd", "log_z", "edge")],
  quad_fine = quad_fine[c("G", "mean", "sd", "log_z", "edge")], quad_q = quad_q,
  quad_seconds = quad_seconds, emcee = emcee,
  chi2_best = sum(resid^2), season_resid = season_resid,
  phot = phot, t_fine = t_fine, curves = curves, best = best)
saveRDS(res, "vignettes/ogle-results.rds")
cat(sprintf("done in %.0f s (fit %.0f s, predict(n_eff = 2000) %.1f s)\n", res$seconds,
            fit_seconds, post_seconds))
print(res$post$summary)
print(rbind(quad = quad_fine$mean, quad_sd = quad_fine$sd))
cat(sprintf("log Z: nbi %.4f +/- %.4f, quadrature %.4f (61^3: %.4f)\n", post$log_evidence,
            post$log_evidence_se, quad_fine$log_z, quad$log_z))
