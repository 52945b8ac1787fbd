# Plotting, resampling and `posterior`-package conversions for nbi posteriors.

# Parameter names of a posterior, made up when the draws carry none.
posterior_names <- function(post) {
  d <- ncol(post$theta)
  nm <- colnames(post$theta)
  if (is.null(nm)) nm <- rep("", d)
  blank <- is.na(nm) | !nzchar(nm)
  nm[blank] <- sprintf("theta[%d]", which(blank))
  nm
}

# Normalised weights of a posterior (uniform when unweighted).
posterior_weights <- function(post) {
  n <- nrow(post$theta)
  if (!is.null(post$log_weights)) {
    lw <- post$log_weights
    w <- exp(lw - max(lw))
    return(w / sum(w))
  }
  if (!is.null(post$weights)) return(post$weights / sum(post$weights))
  rep(1 / n, n)
}

# Normalised log weights (log-sum-exp zero), or NULL for an unweighted posterior.
posterior_log_weights <- function(post) {
  lw <- post$log_weights
  if (is.null(lw)) {
    if (is.null(post$weights)) return(NULL)
    lw <- log(post$weights)
  }
  m <- max(lw)
  lw - (m + log(sum(exp(lw - m))))
}

check_posterior <- function(post, arg) {
  if (!inherits(post, "nbi_posterior"))
    stop(sprintf("`%s` must be an nbi_posterior (from predict() on a fitted engine)", arg),
         call. = FALSE)
  if (!is.matrix(post$theta) || !is.numeric(post$theta) || nrow(post$theta) < 1)
    stop(sprintf("`%s$theta` must be a numeric matrix with at least one draw", arg),
         call. = FALSE)
  invisible(post)
}

# The truth of a corner plot as a length-d vector in the order of `nm` (NA where unknown).
match_truth <- function(truth, nm) {
  d <- length(nm)
  if (is.null(truth)) return(rep(NA_real_, d))
  if (is.list(truth)) truth <- unlist(truth)
  if (!is.numeric(truth))
    stop("`truth` must be a numeric vector (named by parameter, or one value per parameter)",
         call. = FALSE)
  tn <- names(truth)
  if (!is.null(tn) && all(nzchar(tn))) {
    unknown <- setdiff(tn, nm)
    if (length(unknown))
      stop(sprintf("`truth` names unknown parameter(s): %s (the parameters are %s)",
                   paste(unknown, collapse = ", "), paste(nm, collapse = ", ")), call. = FALSE)
    out <- rep(NA_real_, d)
    out[match(tn, nm)] <- as.numeric(truth)
    return(out)
  }
  if (length(truth) != d)
    stop(sprintf("`truth` has %d value(s) but the posterior has %d parameter(s); give one value per parameter or name them",
                 length(truth), d), call. = FALSE)
  as.numeric(truth)
}

# Plotting range of one parameter: central weighted mass, widened a little, covering the truth.
corner_range <- function(x, w, truth) {
  keep <- w > 0 & is.finite(x)
  x <- x[keep]
  w <- w[keep]
  r <- if (length(x) > 1) weighted_quantile(x, w, c(5e-4, 1 - 5e-4)) else rep(x[1], 2)
  if (is.finite(truth)) r <- range(r, truth)
  width <- r[2] - r[1]
  if (!is.finite(width) || width <= 0) width <- max(1, abs(r[1]))
  r + c(-0.05, 0.05) * width
}

# Bin index (1..bins) of each value on equally spaced breaks; NA outside.
bin_index <- function(x, breaks) {
  k <- findInterval(x, breaks, rightmost.closed = TRUE)
  k[k < 1 | k >= length(breaks)] <- NA_integer_
  k
}

# Gaussian smoothing matrix on `bins` cells (columns sum to 1, so mass is kept).
smoothing_matrix <- function(bins, sd = 1) {
  K <- stats::dnorm(outer(seq_len(bins), seq_len(bins), "-"), sd = sd)
  K[abs(outer(seq_len(bins), seq_len(bins), "-")) > 4 * sd] <- 0
  sweep(K, 2, colSums(K), "/")
}

# Density thresholds whose superlevel sets hold the requested masses (decreasing in mass).
hpd_thresholds <- function(z, levels) {
  v <- sort(as.vector(z), decreasing = TRUE)
  cm <- cumsum(v) / sum(v)
  vapply(levels, function(p) v[min(length(v), which(cm >= p)[1])], numeric(1))
}

corner_hist <- function(x, w, lim, bins, col, truth, xlab, show_x) {
  breaks <- seq(lim[1], lim[2], length.out = bins + 1)
  k <- bin_index(x, breaks)
  ok <- !is.na(k)
  mass <- numeric(bins)
  if (any(ok)) {
    s <- rowsum(w[ok], k[ok])
    mass[as.integer(rownames(s))] <- s[, 1]
  }
  dens <- mass / diff(breaks)
  graphics::plot.new()
  graphics::plot.window(xlim = lim, ylim = c(0, max(dens, 1e-300) * 1.08), xaxs = "i",
                        yaxs = "i")
  graphics::rect(breaks[-(bins + 1)], 0, breaks[-1], dens,
                 col = grDevices::adjustcolor(col, alpha.f = 0.45), border = col, lwd = 0.5)
  if (is.finite(truth)) graphics::abline(v = truth, col = "firebrick", lwd = 1.5, lty = 2)
  graphics::axis(1, labels = show_x, xpd = NA)
  graphics::box()
  if (show_x) graphics::title(xlab = xlab, xpd = NA)
}

corner_contour <- function(x, y, w, xlim, ylim, bins, levels, col, truth_x, truth_y, xlab,
                           ylab, show_x, show_y) {
  bx <- seq(xlim[1], xlim[2], length.out = bins + 1)
  by <- seq(ylim[1], ylim[2], length.out = bins + 1)
  kx <- bin_index(x, bx)
  ky <- bin_index(y, by)
  ok <- !is.na(kx) & !is.na(ky) & w > 0
  H <- matrix(0, bins, bins)
  if (any(ok)) {
    s <- rowsum(w[ok], kx[ok] + (ky[ok] - 1L) * bins)
    H[as.integer(rownames(s))] <- s[, 1]
  }
  K <- smoothing_matrix(bins, sd = 1)
  H <- K %*% H %*% t(K)
  mx <- (bx[-1] + bx[-(bins + 1)]) / 2
  my <- (by[-1] + by[-(bins + 1)]) / 2
  graphics::plot.new()
  graphics::plot.window(xlim = xlim, ylim = ylim, xaxs = "i", yaxs = "i")
  if (sum(H) > 0) {
    lev <- sort(unique(hpd_thresholds(H, sort(levels))))
    if (length(lev) && max(H) > max(lev)) {
      alpha <- if (length(lev) > 1) seq(0.15, 0.6, length.out = length(lev)) else 0.3
      shades <- vapply(alpha, function(a) grDevices::adjustcolor(col, alpha.f = a), "")
      graphics::.filled.contour(mx, my, H, levels = c(lev, max(H) * (1 + 1e-9)), col = shades)
    }
    if (length(lev))
      graphics::contour(mx, my, H, levels = lev, drawlabels = FALSE, add = TRUE, col = col,
                        lwd = 1)
  }
  if (is.finite(truth_x)) graphics::abline(v = truth_x, col = "firebrick", lwd = 1.5, lty = 2)
  if (is.finite(truth_y)) graphics::abline(h = truth_y, col = "firebrick", lwd = 1.5, lty = 2)
  if (is.finite(truth_x) && is.finite(truth_y))
    graphics::points(truth_x, truth_y, pch = 19, col = "firebrick")
  graphics::axis(1, labels = show_x, xpd = NA)
  graphics::axis(2, labels = show_y, xpd = NA)
  graphics::box()
  if (show_x) graphics::title(xlab = xlab, xpd = NA)
  if (show_y) graphics::title(ylab = ylab, xpd = NA)
}

#' Corner plot of posterior draws
#'
#' A grid of panels in base graphics: the (importance-weighted, when weights exist)
#' marginal histogram of each parameter on the diagonal, and below it the joint density of
#' each pair as contours of the highest-density regions holding `levels` of the mass
#' (a weighted 2-D histogram, lightly Gaussian-smoothed). The upper triangle is left
#' empty. With one parameter the plot is a single histogram.
#'
#' @param x an `nbi_posterior`, from [predict.nbi_engine()].
#' @param truth optional true parameter values, drawn as dashed lines (and points in the
#'   pair panels): a numeric vector named by parameter (names may be a subset), or one
#'   value per parameter in the posterior's column order.
#' @param bins number of histogram bins per parameter (also the grid of the 2-D density).
#' @param levels posterior masses enclosed by the contours, each in (0, 1).
#' @param col colour of histograms and contours.
#' @param ... further graphical parameters set with [graphics::par()] for the panels
#'   (for example `cex.axis` or `mar`).
#' @return `x`, invisibly. The graphical parameters are restored on exit.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' post <- predict(eng, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2)
#' plot(post, truth = c(mu = 0.5))
#' @export
plot.nbi_posterior <- function(x, truth = NULL, bins = 40, levels = c(0.68, 0.95),
                               col = "steelblue", ...) {
  check_posterior(x, "x")
  if (!is.numeric(bins) || length(bins) != 1 || !is.finite(bins) || bins < 2)
    stop("`bins` must be a single number of at least 2", call. = FALSE)
  bins <- as.integer(round(bins))
  if (!is.numeric(levels) || !length(levels) || any(!is.finite(levels)) ||
      any(levels <= 0 | levels >= 1))
    stop("`levels` must be posterior masses strictly between 0 and 1", call. = FALSE)
  if (length(col) != 1) stop("`col` must be a single colour", call. = FALSE)
  th <- x$theta
  d <- ncol(th)
  nm <- posterior_names(x)
  w <- posterior_weights(x)
  tr <- match_truth(truth, nm)
  lims <- lapply(seq_len(d), function(j) corner_range(th[, j], w, tr[j]))

  op <- graphics::par(no.readonly = TRUE)
  on.exit(graphics::par(op))
  if (d == 1) {
    graphics::par(mfrow = c(1, 1), mar = c(4, 2, 1, 1), mgp = c(2.2, 0.6, 0))
  } else {
    graphics::par(mfrow = c(d, d), mar = c(0.4, 0.4, 0.4, 0.4), oma = c(4, 4, 0.5, 0.5),
                  mgp = c(2.2, 0.5, 0), tcl = -0.3)
  }
  extra <- list(...)
  if (length(extra)) graphics::par(extra)
  for (i in seq_len(d)) {
    for (j in seq_len(d)) {
      bottom <- i == d
      left <- j == 1
      if (j > i) {
        graphics::plot.new()
      } else if (j == i) {
        corner_hist(th[, j], w, lims[[j]], bins, col, tr[j], nm[j], show_x = bottom)
      } else {
        corner_contour(th[, j], th[, i], w, lims[[j]], lims[[i]], bins, levels, col,
                       tr[j], tr[i], nm[j], nm[i], show_x = bottom, show_y = left)
      }
    }
  }
  invisible(x)
}

#' Convert posterior draws to the posterior package's formats
#'
#' Methods for [posterior::as_draws_df()] and [posterior::as_draws_matrix()]: one variable
#' per parameter (one chain, one iteration per draw). Importance weights, when present,
#' are attached with [posterior::weight_draws()] as normalised log weights, so the draws
#' can be resampled with [posterior::resample_draws()] or used by weight-aware tools.
#'
#' @param x an `nbi_posterior`, from [predict.nbi_engine()].
#' @param ... unused.
#' @return A `draws_df` or a `draws_matrix`; with a `.log_weight` reserved variable when
#'   `x` is weighted.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' post <- predict(eng, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2)
#' draws <- as_draws_df(post)
#' posterior::summarise_draws(draws)
#' @importFrom posterior as_draws_df as_draws_matrix
#' @method as_draws_df nbi_posterior
#' @export
as_draws_df.nbi_posterior <- function(x, ...) {
  check_posterior(x, "x")
  th <- x$theta
  colnames(th) <- posterior_names(x)
  draws <- posterior::as_draws_df(as.data.frame(th, stringsAsFactors = FALSE,
                                                optional = TRUE))
  lw <- posterior_log_weights(x)
  if (!is.null(lw)) draws <- posterior::weight_draws(draws, lw, log = TRUE)
  draws
}

#' @rdname as_draws_df.nbi_posterior
#' @method as_draws_matrix nbi_posterior
#' @export
as_draws_matrix.nbi_posterior <- function(x, ...) {
  posterior::as_draws_matrix(as_draws_df.nbi_posterior(x, ...))
}

#' @export
posterior::as_draws_df

#' @export
posterior::as_draws_matrix

#' Resample a weighted posterior to equally weighted draws
#'
#' Systematic resampling: one uniform `u` in (0, 1/n) and the n points
#' `u + (0:(n - 1)) / n` are matched against the cumulative normalised weights, so each
#' draw is repeated `floor(n w)` or `ceiling(n w)` times (the lowest-variance unbiased
#' scheme). The resampled rows are returned in random order. An unweighted posterior is
#' returned unchanged when `n` equals its number of draws, and otherwise sampled uniformly
#' with replacement.
#'
#' @param post an `nbi_posterior`, from [predict.nbi_engine()].
#' @param n number of draws to return.
#' @param seed optional seed for a reproducible result; the session's random-number
#'   stream is left as it was. Without it, [set.seed()] beforehand does the same.
#' @return An unweighted `nbi_posterior` with `n` draws (`weights` and `log_weights`
#'   `NULL`, `n_eff` and `efficiency` `NA`); the evidence estimates and diagnostics of
#'   `post` are kept.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' post <- predict(eng, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2)
#' nbi_resample(post, n = 200, seed = 3)
#' @export
nbi_resample <- function(post, n = nrow(post$theta), seed = NULL) {
  check_posterior(post, "post")
  check_count(n, "n", min = 1)
  n <- as.integer(n)
  if (!is.null(seed)) check_count(seed, "seed", min = 0)
  N <- nrow(post$theta)
  weighted <- !is.null(post$log_weights) || !is.null(post$weights)
  if (!weighted && n == N) return(post)
  run <- function() {
    if (weighted) {
      w <- posterior_weights(post)
      if (!all(is.finite(w)) || sum(w) <= 0)
        stop("`post` has no finite positive weights to resample from", call. = FALSE)
      cw <- cumsum(w)
      cw <- cw / cw[N]
      u <- stats::runif(1) / n
      idx <- findInterval(u + (0:(n - 1)) / n, cw, left.open = TRUE) + 1L
      idx <- pmin(idx, N)
      idx[sample.int(n)]
    } else {
      sample.int(N, n, replace = TRUE)
    }
  }
  idx <- if (is.null(seed)) run() else with_seed(seed, run())
  out <- post
  out$theta <- post$theta[idx, , drop = FALSE]
  rownames(out$theta) <- NULL
  if (!is.null(post$log_q)) out$log_q <- post$log_q[idx]
  out["log_weights"] <- list(NULL)
  out["weights"] <- list(NULL)
  out$n_eff <- NA_real_
  out$efficiency <- NA_real_
  out
}

