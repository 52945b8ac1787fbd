new_posterior <- function(theta, log_q, x_obs, acceptance = 1, log_weights = NULL) {
  n <- nrow(theta)
  w <- NULL
  n_eff <- NA_real_
  if (!is.null(log_weights)) {
    w <- exp(log_weights - max(log_weights))
    w <- w / sum(w)
    n_eff <- 1 / sum(w^2) - 1
  }
  structure(list(theta = theta, log_q = log_q, log_weights = log_weights, weights = w,
                 n_eff = n_eff, efficiency = n_eff / n, log_evidence = NA_real_,
                 log_evidence_se = NA_real_, pareto_k = NA_real_, acceptance = acceptance,
                 x_obs = x_obs),
            class = "nbi_posterior")
}

weighted_quantile <- function(x, w, probs) {
  o <- order(x)
  cw <- cumsum(w[o]) / sum(w)
  vapply(probs, function(p) x[o][min(length(x), which(cw >= p)[1])], numeric(1))
}

#' Summaries of posterior draws
#'
#' Weighted (when importance weights exist) mean, sd and 5/50/95% quantiles per parameter.
#' @param object,x an `nbi_posterior`.
#' @param ... unused.
#' @return `summary()` returns a data frame with one row per parameter.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' summary(predict(eng, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2))
#' @export
summary.nbi_posterior <- function(object, ...) {
  th <- object$theta
  w <- if (is.null(object$weights)) rep(1 / nrow(th), nrow(th)) else object$weights
  rows <- lapply(seq_len(ncol(th)), function(j) {
    m <- sum(w * th[, j])
    q <- weighted_quantile(th[, j], w, c(0.05, 0.5, 0.95))
    data.frame(parameter = colnames(th)[j], mean = m, sd = sqrt(sum(w * (th[, j] - m)^2)),
               q5 = q[1], q50 = q[2], q95 = q[3])
  })
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  class(out) <- c("summary.nbi_posterior", "data.frame")
  out
}

#' @rdname summary.nbi_posterior
#' @export
print.nbi_posterior <- function(x, ...) {
  n <- nrow(x$theta)
  if (is.null(x$weights)) {
    cat(sprintf("<nbi posterior: %d surrogate draws (unweighted)>\n", n))
  } else {
    tempered <- if (!is.null(x$temper) && x$temper > 1)
      sprintf("; proposal tempered x%.2f", x$temper) else ""
    cat(sprintf("<nbi posterior: %d draws, n_eff %.1f (efficiency %.1f%%)%s>\n", n, x$n_eff,
                100 * x$efficiency, tempered))
    k <- x$pareto_k
    cat(sprintf("  Pareto k %s, log evidence %s\n",
                if (is.finite(k)) sprintf("%.2f%s", k, if (k > 0.7) " (> 0.7: weights unreliable)" else "")
                else "n/a",
                if (is.finite(x$log_evidence))
                  sprintf("%.4g +/- %.2g", x$log_evidence, x$log_evidence_se) else "n/a"))
    if (!is.null(x$adapt))
      cat(sprintf("  adaptive importance sampling: round %d of %d kept (n_eff by round: %s)\n",
                  x$adapt$kept, x$adapt$rounds,
                  paste(format(round(x$adapt$n_eff)), collapse = ", ")))
  }
  s <- summary(x)
  print(format(as.data.frame(s), digits = 4), row.names = FALSE)
  invisible(x)
}

#' @export
print.summary.nbi_posterior <- function(x, ...) {
  print(format(as.data.frame(unclass(x)), digits = 4), row.names = FALSE)
  invisible(x)
}

#' @export
print.nbi_posterior_list <- function(x, ...) {
  cat(sprintf("<nbi posterior list: %d observations x %d draws>\n", length(x),
              nrow(x[[1]]$theta)))
  # weighted means when the draws carry importance weights
  means <- t(vapply(x, function(p) if (is.null(p$weights)) colMeans(p$theta)
                    else colSums(p$weights * p$theta), numeric(ncol(x[[1]]$theta))))
  if (ncol(x[[1]]$theta) == 1) means <- t(means)
  colnames(means) <- colnames(x[[1]]$theta)
  weighted <- !is.null(x[[1]]$weights)
  cat(sprintf("posterior means%s (first rows):\n", if (weighted) ", importance-weighted" else ""))
  print(utils::head(means))
  invisible(x)
}
