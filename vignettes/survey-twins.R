# The real event against the point-lens model, and simulated twins of it: sourced by
# precompute-survey.R after the fit (it needs `engine`, `real` and the functions of
# survey-model.R) and writes `misfit` and `twins` for vignette("survey-light-curves").

# ---- how well the point-lens model fits the real curve ----
# the fluxes (source, blend) at theta by weighted least squares, in the likelihood's units
fluxes_at <- function(x, theta) {
  f <- flux(x[, 2])
  A <- magnification(x[, 1], theta[1], theta[2], theta[3])
  w <- 1 / (f * 0.4 * log(10) * x[, 3])^2
  stats::lm.wfit(cbind(A, 1), f, w)$coefficients
}
# the maximum-likelihood (t0, u0, tE) on the epochs `keep`, with Laplace sds
ml_fit <- function(x, keep, start) {
  xs <- x[keep, , drop = FALSE]
  nll <- function(p) -log_lik(xs, NULL, p, NULL)
  o <- stats::optim(start, nll, control = list(parscale = c(0.1, 0.01, 1), reltol = 1e-12,
                                               maxit = 5000))
  sd <- sqrt(diag(solve(stats::optimHess(o$par, nll))))
  c(epochs = nrow(xs), t0 = o$par[1], t0_sd = sd[1], u0 = o$par[2], u0_sd = sd[2],
    tE = o$par[3], tE_sd = sd[3])
}
best <- ml_fit(real, rep(TRUE, nrow(real)), c(3628.3, 0.375, 102))
theta_best <- best[c("t0", "u0", "tE")]
dt <- real[, 1] - theta_best[["t0"]]
fits <- rbind(all = best,
              rise_and_baseline = ml_fit(real, dt < 0 | abs(dt) > 300, theta_best),
              fall_and_baseline = ml_fit(real, dt > 0 | abs(dt) > 300, theta_best))
fluxes <- fluxes_at(real, theta_best)
model_flux <- fluxes[1] * magnification(real[, 1], theta_best[1], theta_best[2],
                                        theta_best[3]) + fluxes[2]
resid <- real[, 2] - (22 - 2.5 * log10(model_flux))
region <- cut(dt, c(-Inf, -300, -150, -40, 40, 150, 300, Inf), dig.lab = 4)
misfit <- list(
  fits = as.data.frame(fits),
  residuals = data.frame(days_from_t0 = levels(region),
                         epochs = as.vector(table(region)),
                         mean_residual_mmag = as.vector(tapply(resid, region, mean)) * 1000,
                         chi2_per_epoch = as.vector(tapply((resid / real[, 3])^2, region, mean))),
  chi2 = sum((resid / real[, 3])^2), theta_best = theta_best, fluxes = fluxes)

# ---- twins: the real epochs and errors, the best-fit event, noise as catalogued ----
# (err_scale 1.46: noise as large as the real curve's scatter about the best fit)
twin <- function(err_scale) {
  f <- model_flux + model_flux * 0.4 * log(10) * real[, 3] * err_scale * stats::rnorm(nrow(real))
  relative(cbind(real[, 1], 22 - 2.5 * log10(f), real[, 3]))
}
n_twins <- as.integer(Sys.getenv("NBI_SURVEY_TWINS", "20"))
twin_table <- function(err_scale, seed) {
  set.seed(seed)
  xs <- lapply(seq_len(n_twins), function(i) twin(err_scale))
  rows <- lapply(xs, function(x) {
    ex <- suppressWarnings(predict(engine, x, n_samples = 1000, n_eff = 1000, seed = 5,
                                   threads = 2))
    su <- summary(predict(engine, x, n_samples = 4000, importance = FALSE, seed = 5,
                          threads = 2))
    se <- summary(ex)
    c(ex$status == "ok", (su$mean - se$mean) / se$sd, su$sd / se$sd,
      (se$mean - theta_best) / se$sd)
  })
  out <- as.data.frame(do.call(rbind, rows))
  names(out) <- c("ok", "offset_t0", "offset_u0", "offset_tE", "width_t0", "width_u0",
                  "width_tE", "exact_z_t0", "exact_z_u0", "exact_z_tE")
  out$ok <- out$ok == 1
  out
}
twins <- list(catalogued = twin_table(1, 11), scaled = twin_table(1.46, 12), n = n_twins)
