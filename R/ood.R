# Out-of-distribution check (seed 001, appendix A: observations outside the support of the
# training data get invalid posteriors and must be flagged).
#
# The statistic is the squared Mahalanobis distance of an observation's featurizer output
# (the vector the flow is conditioned on) from the training simulations' outputs: their mean
# and covariance (a small ridge keeps it invertible) are computed when the engine is fitted,
# together with the distances of the held-out validation simulations, which calibrate it.
# An observation's tail probability is the fraction of held-out distances at least as
# large, and beyond their 90% quantile an exponential tail fitted to the excesses over it
# (mean excess beta, at least 2: p = 0.1 exp(-(d2 - q90) / beta)), so that probabilities
# far below 1 / n_valid are still graded. For Gaussian-like features (chi-square distances,
# whose tail falls faster than exponentially beyond their 90% quantile) this overstates p:
# the flag errs towards silence. The network has never seen an input that far out, whatever
# the reason: noise unlike the simulator's, a model that does not describe the object, bad
# data.

# Calibration from standardised network inputs (n_in x n matrices, noisy as the network saw
# them): up to `max_rows` training columns for the mean and covariance, the validation
# columns (or, without any, the training ones) for the reference distances.
ood_calibrate <- function(spec, params, x_train, x_valid, threads, max_rows = 5000L) {
  pick <- function(x) if (ncol(x) > max_rows) x[, round(seq(1, ncol(x), length.out = max_rows)), drop = FALSE] else x
  feat <- function(x) with_blas_threads(1L, .Call(C_r_model_features, spec, params, pick(x), threads))
  ft <- feat(x_train)
  if (ncol(ft) < 3) return(NULL)
  mu <- rowMeans(ft)
  S <- tcrossprod(ft - mu) / (ncol(ft) - 1)
  ridge <- 1e-6 * max(mean(diag(S)), 1e-12)
  R <- tryCatch(chol(S + diag(ridge, nrow(S))), error = function(e) NULL)
  if (is.null(R)) return(NULL)
  dist <- function(f) colSums(backsolve(R, f - mu, transpose = TRUE)^2)
  # the held-out distances; with few of them, the training ones too (in-sample distances are
  # smaller by a fraction of about nc / n_train: negligible next to the tail's uncertainty)
  nv <- if (is.null(x_valid)) 0 else ncol(x_valid)
  d2 <- if (nv >= 200) dist(feat(x_valid)) else c(if (nv > 0) dist(feat(x_valid)), dist(ft))
  d2 <- sort(d2)
  u <- stats::quantile(d2, 0.9, names = FALSE)
  # mean excess, at least 2: the asymptotic decay exp(-d2 / 2) of chi-square distances
  # (Gaussian features); a lighter tail is never assumed
  beta <- max(mean(d2[d2 > u] - u), 2, na.rm = TRUE)
  list(mean = mu, chol = R, d2 = d2, q90 = u, beta = beta)
}

# Squared distances of the observations (standardised inputs, n_in x n) from the training
# features, and their tail probabilities; NULL when the engine has no calibration (fitted
# by an nbi before 0.3.0).
ood_check <- function(object, enc, threads) {
  cal <- object$model$ood
  if (is.null(cal)) return(NULL)
  f <- with_blas_threads(1L, .Call(C_r_model_features, enc$spec, object$model$params, enc$x,
                                   threads))
  d2 <- colSums(backsolve(cal$chol, f - cal$mean, transpose = TRUE)^2)
  list(d2 = d2, p = ood_pvalue(d2, cal))
}

ood_pvalue <- function(d2, cal) {
  v <- cal$d2
  n <- length(v)
  # held-out distances at least d2, with the observation itself counted (never 0)
  emp <- (1 + n - findInterval(d2, v, left.open = TRUE)) / (n + 1)
  ifelse(d2 > cal$q90, 0.1 * exp(-(d2 - cal$q90) / cal$beta), emp)
}
