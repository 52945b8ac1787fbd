# Importance sampling of the surrogate posterior (seed 000, Algorithm 1 and Eq. 1-2):
# w ∝ p(x_obs | theta) p(theta) / q(theta | x_obs), n_eff = 1 / sum(w^2) - 1.

# The x_err to use for the default Gaussian likelihood (NULL when there is none).
default_x_err <- function(object, x_err) {
  if (!is.null(x_err)) {
    if (!is.numeric(x_err) || !all(is.finite(x_err)) || any(x_err <= 0))
      stop("`x_err` must hold positive finite errors", call. = FALSE)
    return(x_err)
  }
  if (is.numeric(object$noise) && all(object$noise > 0)) return(object$noise)
  NULL
}

has_likelihood <- function(object, x_err) {
  is.function(object$log_likelihood) || !is.null(default_x_err(object, x_err))
}

# log p(x_obs | theta_i) for each row, from the noise-free simulations x_sim (rows).
eval_log_lik <- function(object, x_obs, x_sim, theta, x_err) {
  if (is.function(object$log_likelihood)) {
    ll <- if (isTRUE(object$vectorized)) {
      object$log_likelihood(x_obs, x_sim, theta, x_err)
    } else {
      vapply(seq_len(nrow(theta)), function(i) {
        xs <- if (is.null(x_sim)) NULL else if (is.matrix(x_sim)) x_sim[i, ] else x_sim[[i]]
        as.numeric(object$log_likelihood(x_obs, xs, theta[i, ], x_err))[1]
      }, numeric(1))
    }
    if (!is.numeric(ll) || length(ll) != nrow(theta))
      stop(sprintf("`log_likelihood` must return one number per parameter set (%d)", nrow(theta)),
           call. = FALSE)
    return(as.numeric(ll))
  }
  err <- default_x_err(object, x_err)
  # a noise function may append columns (e.g. the drawn per-object errors, seed 001): the
  # observation then starts with the simulator's values, which the likelihood compares
  if (is.function(object$noise) && is.matrix(x_sim) && length(x_obs) > ncol(x_sim))
    x_obs <- x_obs[seq_len(ncol(x_sim))]
  if (!is.matrix(x_sim) || ncol(x_sim) != length(x_obs))
    stop(sprintf("the default Gaussian likelihood needs `x_obs` in the simulator's layout (%d values); give `log_likelihood` to the engine otherwise",
                 if (is.matrix(x_sim)) ncol(x_sim) else NA_integer_), call. = FALSE)
  if (length(err) != 1L && length(err) != length(x_obs))
    stop(sprintf("`%s` has %d values but the observation has %d: give one error for all, or one per value",
                 if (is.null(x_err)) "noise" else "x_err", length(err), length(x_obs)), call. = FALSE)
  err <- rep_len(err, length(x_obs))
  r <- t((t(x_sim) - x_obs) / err)
  -0.5 * rowSums(r^2) - sum(log(2 * pi * err^2)) / 2
}

# Weights and diagnostics from log-likelihoods, log-priors and proposal log-densities.
importance_stats <- function(log_lik, log_prior, log_q) {
  s <- .Call(C_r_importance, as.numeric(log_lik), as.numeric(log_prior), as.numeric(log_q))
  s$efficiency <- s$n_eff / length(log_q)
  s$pareto_k <- if (s$all_zero) NA_real_ else pareto_k(s$log_weights)
  warn_weights(s$all_zero, s$pareto_k)
  s
}

# The warnings of a weighted posterior: no weight at all, or a heavy-tailed set.
warn_weights <- function(all_zero, k, hint = "") {
  if (isTRUE(all_zero))
    warning("every importance weight is zero: the surrogate proposes nothing the likelihood supports (n_eff = 0)",
            call. = FALSE)
  else if (is.finite(k) && k > 0.7)
    warning(sprintf("Pareto k = %.2f > 0.7: the importance weights have a heavy tail; treat n_eff with caution%s",
                    k, hint), call. = FALSE)
}

# Pareto-k tail diagnostic of log weights (PSIS, Vehtari et al. 2024): loo when installed,
# else a generalised Pareto fit (Zhang & Stephens 2009) to the largest weights.
pareto_k <- function(log_w) {
  lw <- log_w[is.finite(log_w)]
  S <- length(lw)
  if (S < 10) return(NA_real_)
  if (requireNamespace("loo", quietly = TRUE)) {
    k <- tryCatch(suppressWarnings(loo::pareto_k_values(loo::psis(lw, r_eff = 1))),
                  error = function(e) NULL)
    if (!is.null(k)) return(as.numeric(k))
  }
  M <- ceiling(min(0.2 * S, 3 * sqrt(S)))
  lw <- sort(lw - max(lw))
  tail <- exp(lw[(S - M + 1):S]) - exp(lw[S - M])
  gpd_k(tail[tail > 0])
}

gpd_k <- function(x) {
  N <- length(x)
  if (N < 5) return(NA_real_)
  x <- sort(x)
  m <- 30 + floor(sqrt(N))
  xstar <- x[floor(N / 4 + 0.5)]
  theta <- 1 / x[N] + (1 - sqrt(m / (seq_len(m) - 0.5))) / 3 / xstar
  prof <- vapply(theta, function(t) {
    k <- mean(log1p(-t * x))
    N * (log(-t / k) - k - 1)
  }, numeric(1))
  w <- exp(prof - max(prof))
  w <- w / sum(w)
  th <- sum(theta * w)
  k <- mean(log1p(-th * x))
  (N * k + 10 * 0.5) / (N + 10)  # weakly informative prior towards 0.5
}
