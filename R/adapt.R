# Adaptive importance sampling (population Monte Carlo, Cappé et al. 2004): when the
# surrogate is a poor proposal (a small training set, seed 000's low-efficiency case), the
# weighted draws still say where the posterior is. Each round fits a mixture of Student-t
# components to all weighted draws so far and importance-samples from the defensive mixture
# m = alpha q + (1 - alpha) g (Hesterberg 1995): the surrogate's share keeps every region it
# covers, so the weights p(x | theta) p(theta) / m(theta) stay bounded there. The weights
# are exact for any g; only their variance depends on how well g fits.

adapt_settings <- list(components = 8L, df = 5, alpha = 0.1, shrink = 1, inflate = 1.2,
                       floor = 1e-3, em_iters = 30L, em_rows = 20000L)

# log(exp(a) + exp(b)), elementwise and stable (-Inf allowed).
log_add_exp <- function(a, b) {
  m <- pmax(a, b)
  out <- m + log1p(exp(-abs(a - b)))
  out[m == -Inf] <- -Inf
  out
}

# log-sum-exp of each row of a matrix.
log_sum_rows <- function(a) {
  m <- apply(a, 1, max)
  m[!is.finite(m)] <- 0
  m + log(rowSums(exp(a - m)))
}

# Gaussian log-density of the rows of z (n x d), mean mu, covariance with Cholesky factor R.
mvn_log_density <- function(z, mu, R) {
  u <- backsolve(R, t(z) - mu, transpose = TRUE)
  -0.5 * colSums(u^2) - sum(log(diag(R))) - 0.5 * ncol(z) * log(2 * pi)
}

# Student-t log-density (df degrees of freedom, scale matrix with Cholesky factor R).
mvt_log_density <- function(z, mu, R, df) {
  d <- ncol(z)
  q <- colSums(backsolve(R, t(z) - mu, transpose = TRUE)^2)
  lgamma((df + d) / 2) - lgamma(df / 2) - d / 2 * log(df * pi) - sum(log(diag(R))) -
    (df + d) / 2 * log1p(q / df)
}

# A mixture fitted by weighted EM (Gaussian responsibilities) to the rows of z with
# weights w (any scale), started from k-means centres of a weighted resample. Each
# covariance is pulled towards S0 by `shrink` pseudo-draws against the component's
# effective count (n_eff times its share), so that few effective draws give a wide
# component rather than a collapsed one; it is then widened by `inflate` and floored at
# `floor` * S0. Returns the shares, means and Cholesky factors of the scale matrices.
tmix_fit <- function(z, w, S0, s = adapt_settings) {
  keep <- w > 1e-12 * max(w)
  z <- z[keep, , drop = FALSE]
  w <- w[keep] / sum(w[keep])
  n_eff <- 1 / sum(w^2)
  d <- ncol(z)
  if (nrow(z) > s$em_rows) {  # EM on a weighted resample: the same mixture, fewer rows
    pick <- sample.int(nrow(z), s$em_rows, replace = TRUE, prob = w)
    z <- z[pick, , drop = FALSE]
    w <- rep(1 / s$em_rows, s$em_rows)
  }
  pick <- sample.int(nrow(z), 4000L, replace = TRUE, prob = w)
  K <- min(s$components, length(unique(pick)))
  mu <- if (K > 1) tryCatch(stats::kmeans(z[pick, , drop = FALSE], K, iter.max = 30L)$centers,
                            error = function(e) NULL)
  if (is.null(mu)) mu <- matrix(colSums(w * z), 1)
  K <- nrow(mu)
  S_all <- stats::cov.wt(z, wt = w, method = "ML")$cov
  R <- lapply(seq_len(K), function(k) chol(S_all + s$floor * S0))
  share <- rep(1 / K, K)
  for (it in seq_len(s$em_iters)) {
    lr <- vapply(seq_len(K), function(k) log(share[k]) + mvn_log_density(z, mu[k, ], R[[k]]),
                 numeric(nrow(z)))
    lr <- matrix(lr, nrow(z))
    resp <- exp(lr - log_sum_rows(lr)) * w
    mass <- colSums(resp)
    alive <- mass > 1e-6
    resp <- resp[, alive, drop = FALSE]
    mass <- mass[alive]
    K <- length(mass)
    share <- mass / sum(mass)
    mu <- matrix(crossprod(resp, z) / mass, K, d)  # row k: component k's weighted mean
    R <- lapply(seq_len(K), function(k) {
      dz <- sweep(z, 2, mu[k, ])
      Sk <- crossprod(dz * sqrt(resp[, k])) / mass[k]
      n_k <- n_eff * share[k]
      Sk <- (n_k * Sk + s$shrink * S0) / (n_k + s$shrink)
      chol(Sk * s$inflate^2 + s$floor * S0)
    })
  }
  list(share = share, mu = mu, R = R, df = s$df)
}

tmix_log_density <- function(g, z) {
  lr <- vapply(seq_along(g$share), function(k)
    log(g$share[k]) + mvt_log_density(z, g$mu[k, ], g$R[[k]], g$df), numeric(nrow(z)))
  log_sum_rows(matrix(lr, nrow(z)))
}

tmix_draw <- function(g, n) {
  d <- ncol(g$mu)
  comp <- sample.int(length(g$share), n, replace = TRUE, prob = g$share)
  z <- matrix(0, n, d)
  for (k in unique(comp)) {
    i <- which(comp == k)
    u <- matrix(stats::rnorm(length(i) * d), ncol = d) %*% g$R[[k]]
    z[i, ] <- sweep(u * sqrt(g$df / stats::rchisq(length(i), g$df)), 2, g$mu[k, ], "+")
  }
  z
}

# n draws of the fitted mixture inside the prior's support (parameter units), with the
# estimated probability of the support under the mixture.
tmix_draw_in_support <- function(object, g, n) {
  m <- object$model
  kept <- list()
  got <- 0L
  tried <- 0
  while (got < n && tried < 200 * n) {
    want <- ceiling(1.2 * (n - got) / max(0.01, if (tried > 0) got / tried else 1)) + 8
    th <- sweep(sweep(tmix_draw(g, want), 2, m$theta_sd, "*"), 2, m$theta_mean, "+")
    colnames(th) <- m$names
    tried <- tried + want
    inside <- is.finite(log_prior(object$prior, th))
    kept[[length(kept) + 1L]] <- th[inside, , drop = FALSE]
    got <- got + sum(inside)
  }
  if (got == 0) return(NULL)
  th <- do.call(rbind, kept)
  list(theta = th[seq_len(min(n, got)), , drop = FALSE], acceptance = got / tried)
}

# `rounds` rounds of adaptive importance sampling for one observation, from `post` (the
# surrogate's weighted draws). Every round draws n: round(alpha n) from the surrogate (its
# density truncated to the support: q / acceptance) and the rest from the fitted mixture
# (truncated likewise), weighed against the mixture of both. Returns the round with the
# largest n_eff (round 0: `post` itself), with the per-round n_eff in `adapt`.
adapt_posterior <- function(object, x_obs, x_err, post, n, rounds, threads,
                            s = adapt_settings) {
  m <- object$model
  to_z <- function(th) sweep(sweep(th, 2, m$theta_mean), 2, m$theta_sd, "/")
  log_jac <- sum(log(m$theta_sd))
  S0 <- stats::cov(to_z(post$theta)) / 4  # the surrogate's spread: the shrinkage target
  if (!all(is.finite(S0)) || any(diag(S0) <= 0)) S0 <- diag(ncol(post$theta)) / 4
  S0 <- as.matrix(S0)
  pool_z <- to_z(post$theta)
  pool_lw <- post$log_weights
  best <- post
  n_effs <- post$n_eff
  n_q <- max(1L, round(s$alpha * n))
  for (r in seq_len(rounds)) {
    ok <- is.finite(pool_lw)
    if (!any(ok)) break
    g <- tmix_fit(pool_z[ok, , drop = FALSE], exp(pool_lw[ok] - max(pool_lw[ok])), S0, s)
    gd <- tmix_draw_in_support(object, g, n - n_q)
    if (is.null(gd)) break
    qd <- sample_in_support(object, list(x_obs), n_q, threads)
    theta <- rbind(qd$theta[[1]], gd$theta)
    a <- nrow(qd$theta[[1]]) / nrow(theta)  # each part's share of the draws
    log_q <- nbi_log_prob(object, theta, x_obs, threads) - log(qd$acceptance)
    log_g <- tmix_log_density(g, to_z(theta)) - log_jac - log(gd$acceptance)
    log_m <- log_add_exp(log(a) + log_q, log(1 - a) + log_g)
    p <- suppressWarnings(weigh_proposals(object, x_obs, x_err, theta, log_m, 1, NA))
    n_effs <- c(n_effs, p$n_eff)
    pool_z <- rbind(pool_z, to_z(p$theta))
    pool_lw <- c(pool_lw, p$log_weights)
    if (is.finite(p$n_eff) && (!is.finite(best$n_eff) || p$n_eff > best$n_eff)) best <- p
  }
  best$adapt <- list(rounds = length(n_effs) - 1L, n_eff = n_effs,
                     kept = which(n_effs == best$n_eff)[1] - 1L)
  best
}
