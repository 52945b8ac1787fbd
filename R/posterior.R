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
#' A posterior whose weights are all zero (the surrogate proposed nothing the likelihood
#' supports) has no summary: its rows are `NA`.
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
  empty <- nrow(th) == 0 || !any(w > 0, na.rm = TRUE)
  rows <- lapply(seq_len(ncol(th)), function(j) {
    if (empty) return(data.frame(parameter = colnames(th)[j], mean = NA_real_, sd = NA_real_,
                                 q5 = NA_real_, q50 = NA_real_, q95 = NA_real_))
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
  status <- if (is.null(x$status) || is.na(x$status)) "" else sprintf(", status %s", x$status)
  if (is.null(x$weights)) {
    cat(sprintf("<nbi posterior: %d surrogate draws (unweighted)%s>\n", n, status))
  } else {
    tempered <- if (!is.null(x$temper) && x$temper > 1)
      sprintf("; proposal tempered x%.2f", x$temper) else ""
    cat(sprintf("<nbi posterior: %d draws, n_eff %.1f (efficiency %.1f%%)%s%s>\n", n, x$n_eff,
                100 * x$efficiency, status, tempered))
    k <- x$pareto_k
    cat(sprintf("  Pareto k %s, log evidence %s\n",
                if (is.finite(k)) sprintf("%.2f%s", k, if (k > 0.7) " (> 0.7: weights unreliable)" else "")
                else "n/a",
                if (is.finite(x$log_evidence))
                  sprintf("%.4g +/- %.2g", x$log_evidence, x$log_evidence_se) else "n/a"))
    if (!is.null(x$rounds) && nrow(x$rounds) > 1)
      cat(sprintf("  adaptive importance sampling: %d round(s) after the surrogate's, %d pooled; n_eff by round: %s\n",
                  nrow(x$rounds) - 1L, sum(x$rounds$pooled),
                  paste(format(round(x$rounds$n_eff)), collapse = ", ")))
    if (!is.null(x$n_sims))
      cat(sprintf("  %d simulations, %.2f s\n", as.integer(x$n_sims), x$seconds))
  }
  if (!is.null(x$ood_p) && is.finite(x$ood_p) && identical(x$status, "out_of_distribution"))
    cat(sprintf("  out of distribution: the training simulations reach its featurizer distance with probability %.2g\n",
                x$ood_p))
  if (n > 0) {
    s <- summary(x)
    print(format(as.data.frame(s), digits = 4), row.names = FALSE)
  }
  invisible(x)
}

#' @export
print.summary.nbi_posterior <- function(x, ...) {
  print(format(as.data.frame(unclass(x)), digits = 4), row.names = FALSE)
  invisible(x)
}

#' Survey tables of many posteriors
#'
#' `predict()` on many observations returns an `nbi_posterior_list`. `as.data.frame()` turns
#' it into the survey table: one row per observation with its `id` (the names of `x_obs`'s
#' list or rows, else its position), per parameter the weighted mean, sd and 5/50/95%
#' quantiles (columns `<parameter>_mean`, `_sd`, `_q5`, `_q50`, `_q95`), then `n_eff`,
#' `efficiency`, `pareto_k`, `log_evidence`, `log_evidence_se`, `status`, `n_sims`
#' (simulator calls), `seconds`, `rounds` (adaptive rounds after the surrogate's) and
#' `ood_p` (see [predict.nbi_engine()]). `summary()` counts the statuses and summarises the
#' diagnostics.
#' @param x,object an `nbi_posterior_list`.
#' @param row.names,optional unused (for the generic).
#' @param ... unused.
#' @return `as.data.frame()`: a data frame with one row per observation; `summary()`: an
#'   object of class `summary.nbi_posterior_list` (a list with the status counts and
#'   quantiles of n_eff, efficiency, simulator calls and seconds per observation).
#' @examples
#' sim <- function(theta) rep(theta[["mu"]], 3)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), noise = 0.5,
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' posts <- predict(eng, rbind(a = c(0.5, 0.4, 0.7), b = c(-1, -1.2, -0.8)), n_samples = 500,
#'                  n_eff = 400, seed = 2)
#' as.data.frame(posts)
#' summary(posts)
#' @export
as.data.frame.nbi_posterior_list <- function(x, row.names = NULL, optional = FALSE, ...) {
  nm <- names(x)
  id <- if (is.null(nm) || all(!nzchar(nm))) seq_along(x) else nm
  num <- function(p, f) if (is.null(p[[f]]) || !length(p[[f]])) NA_real_ else as.numeric(p[[f]])
  stats <- do.call(rbind, lapply(x, function(p) {
    s <- summary(p)
    v <- as.vector(t(as.matrix(s[, c("mean", "sd", "q5", "q50", "q95")])))
    names(v) <- paste(rep(s$parameter, each = 5), c("mean", "sd", "q5", "q50", "q95"), sep = "_")
    v
  }))
  out <- data.frame(id = id, stats, check.names = FALSE)
  out$n_eff <- vapply(x, num, 0, "n_eff")
  out$efficiency <- vapply(x, num, 0, "efficiency")
  out$pareto_k <- vapply(x, num, 0, "pareto_k")
  out$log_evidence <- vapply(x, num, 0, "log_evidence")
  out$log_evidence_se <- vapply(x, num, 0, "log_evidence_se")
  out$status <- vapply(x, function(p) if (is.null(p$status)) NA_character_ else p$status, "")
  out$n_sims <- vapply(x, num, 0, "n_sims")
  out$seconds <- vapply(x, num, 0, "seconds")
  out$rounds <- vapply(x, function(p) if (is.null(p$rounds)) 0 else nrow(p$rounds) - 1, 0)
  out$ood_p <- vapply(x, num, 0, "ood_p")
  rownames(out) <- NULL
  out
}

#' @rdname as.data.frame.nbi_posterior_list
#' @export
summary.nbi_posterior_list <- function(object, ...) {
  tab <- as.data.frame(object)
  lev <- c("ok", "short", "out_of_distribution")
  status <- table(factor(tab$status, levels = lev), useNA = "no")
  q <- function(v) stats::quantile(v, c(0, 0.5, 1), na.rm = TRUE, names = FALSE)
  structure(list(n = nrow(tab), status = status, unweighted = sum(is.na(tab$status)),
                 n_eff = q(tab$n_eff), efficiency = q(tab$efficiency), n_sims = q(tab$n_sims),
                 seconds = q(tab$seconds), total_sims = sum(tab$n_sims, na.rm = TRUE),
                 total_seconds = sum(tab$seconds, na.rm = TRUE)),
            class = "summary.nbi_posterior_list")
}

#' @export
print.summary.nbi_posterior_list <- function(x, ...) {
  cat(sprintf("%d observations: %d ok, %d short, %d out of distribution%s\n", x$n,
              x$status[["ok"]], x$status[["short"]], x$status[["out_of_distribution"]],
              if (x$unweighted > 0) sprintf(", %d unweighted", x$unweighted) else ""))
  row <- function(label, v, fmt) cat(sprintf("  %-22s min %s, median %s, max %s\n", label,
                                             sprintf(fmt, v[1]), sprintf(fmt, v[2]), sprintf(fmt, v[3])))
  if (all(is.finite(x$n_eff))) row("n_eff", x$n_eff, "%.0f")
  if (all(is.finite(x$efficiency))) row("efficiency", 100 * x$efficiency, "%.1f%%")
  if (all(is.finite(x$n_sims))) row("simulations", x$n_sims, "%.0f")
  if (all(is.finite(x$seconds))) row("seconds", x$seconds, "%.3f")
  cat(sprintf("  in all: %.0f simulations, %.1f s\n", x$total_sims, x$total_seconds))
  invisible(x)
}

#' @export
print.nbi_posterior_list <- function(x, ...) {
  cat(sprintf("<nbi posterior list: %d observations>\n", length(x)))
  st <- vapply(x, function(p) if (is.null(p$status)) NA_character_ else p$status, "")
  if (any(!is.na(st))) {
    tab <- table(factor(st, levels = c("ok", "short", "out_of_distribution")))
    cat(sprintf("status: %d ok, %d short, %d out of distribution\n", tab[["ok"]], tab[["short"]],
                tab[["out_of_distribution"]]))
  }
  d <- max(vapply(x, function(p) ncol(p$theta), 0L))
  means <- t(vapply(x, function(p) {
    s <- summary(p)
    if (nrow(s) == d) s$mean else rep(NA_real_, d)
  }, numeric(d)))
  if (d == 1) means <- t(means)
  colnames(means) <- colnames(x[[1]]$theta)
  weighted <- !is.null(x[[1]]$weights)
  cat(sprintf("posterior means%s (first rows):\n", if (weighted) ", importance-weighted" else ""))
  print(utils::head(means))
  invisible(x)
}
