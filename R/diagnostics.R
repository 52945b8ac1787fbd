# Calibration diagnostics of an amortised engine on fresh prior simulations: expected
# coverage of central credible intervals (p-p plot) and simulation-based calibration ranks
# (Talts et al. 2018). Both draw test parameters from the prior, simulate them, add the
# engine's noise once, and sample every test posterior in one batched predict() call.

# For each test case and parameter, how many surrogate draws fall below the true value.
# Returns list(theta = truths, below = integer n x d matrix, n_draws = draws per case,
# n_failed = failed simulations), keeping only test cases with all n_samples draws.
calibration_counts <- function(object, n_test, n_samples, threads) {
  truth <- sample_prior(object$prior, n_test)
  sims <- nbi_simulate(object, theta = truth)
  theta <- sims$theta
  n <- nrow(theta)
  if (n < 2)
    stop(sprintf("only %d of %d test simulations succeeded; at least 2 are needed",
                 n, n_test), call. = FALSE)
  x <- as_training_x(sims$x, n, object$featurizer)
  drawn <- apply_noise(object$noise, x, theta, object$featurizer, object$prior)
  x <- drawn$x
  theta <- drawn$theta  # the truths as an augmentation leaves them
  if (!is.list(x)) attr(x, "raw_dim") <- NULL
  posts <- predict(object, x, n_samples = n_samples, importance = FALSE, threads = threads)
  d <- ncol(theta)
  n_draws <- vapply(posts, function(p) nrow(p$theta), integer(1))
  below <- vapply(seq_len(n), function(i) {
    as.integer(colSums(posts[[i]]$theta < rep(theta[i, ], each = n_draws[i])))
  }, integer(d))
  below <- matrix(below, nrow = n, ncol = d, byrow = TRUE,
                  dimnames = list(NULL, colnames(theta)))
  full <- n_draws == n_samples
  if (!all(full)) {
    warning(sprintf("%d test case(s) got fewer than %d draws inside the prior's support and were dropped",
                    sum(!full), n_samples), call. = FALSE)
    if (sum(full) < 2)
      stop("fewer than 2 test cases have a complete set of posterior draws", call. = FALSE)
  }
  theta <- theta[full, , drop = FALSE]
  rownames(theta) <- NULL
  list(theta = theta, below = below[full, , drop = FALSE], n_failed = sims$n_failed)
}

check_calibration_args <- function(object, n_test, n_samples, seed, threads) {
  check_fitted(object)
  check_count(n_test, "n_test", min = 2)
  check_count(n_samples, "n_samples", min = 1)
  if (!is.null(seed)) check_count(seed, "seed", min = 0)
  default_threads(threads)
}

# ---- expected coverage ----------------------------------------------------------------

#' Expected coverage of the surrogate posterior
#'
#' Checks whether the credible intervals of a fitted engine have the probability they
#' claim. `n_test` parameter sets are drawn from the prior and simulated, the engine's
#' noise model is applied once, and the surrogate posterior of every noisy observation is
#' sampled (all at once, in batched C calls; no importance weights). For each test case
#' and parameter, the posterior quantile of the true value, u = fraction of draws below it,
#' is recorded. The central credible interval of level alpha contains the truth when
#' |u - 0.5| <= alpha / 2, and the empirical coverage at alpha is the fraction of test
#' cases where it does (seed 001, Figure 3). For a calibrated posterior it equals alpha up
#' to binomial noise.
#'
#' @section Reading the plot:
#' `plot()` draws one p-p panel per parameter: empirical against nominal coverage, the
#' diagonal, and a shaded 95% binomial band around the diagonal (where the curve of a
#' calibrated posterior stays at 95% of the levels). A curve below the diagonal means the
#' intervals are too narrow (the posterior is overconfident); above the diagonal, too wide
#' (underconfident, conservative).
#'
#' @param object a fitted [nbi_engine()].
#' @param n_test number of prior simulations to test on (>= 2).
#' @param n_samples number of posterior draws per test case.
#' @param seed optional seed: the test parameters, simulations, noise and draws are then
#'   reproducible (or use [set.seed()]).
#' @param threads threads for the C core.
#' @param x an `nbi_coverage` object.
#' @param levels credibility levels shown by `print()`.
#' @param col colour of the coverage curve and band.
#' @param ... further graphical parameters set with [graphics::par()] for the panels
#'   (`plot()`); unused by `print()`.
#' @return An object of class `nbi_coverage`, a list with
#'   \item{levels}{the credibility levels: 0, 0.01, ..., 0.99, 1;}
#'   \item{coverage}{a matrix of empirical coverages, one row per level and one column per
#'     parameter;}
#'   \item{quantiles}{the n_test x d matrix of the truths' posterior quantiles u;}
#'   \item{theta}{the true parameters of the test cases;}
#'   \item{n_test, n_samples}{the number of test cases used and of draws per case.}
#'   Failed simulations, and test cases whose posterior could not get `n_samples` draws
#'   inside the prior's support, are dropped (with a warning), so `n_test` may be smaller
#'   than asked. `print()` and `plot()` return `x` invisibly.
#' @seealso [nbi_sbc()] for rank histograms of the same kind of test.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' cov <- nbi_coverage(eng, n_test = 20, n_samples = 200, seed = 2)
#' cov
#' plot(cov)
#' @export
nbi_coverage <- function(object, n_test = 200, n_samples = 1000, seed = NULL,
                         threads = NULL) {
  threads <- check_calibration_args(object, n_test, n_samples, seed, threads)
  run <- function() calibration_counts(object, n_test, n_samples, threads)
  res <- if (is.null(seed)) run() else with_seed(seed, run())
  u <- res$below / n_samples
  levels <- c(0, seq_len(99) / 100, 1)
  structure(list(levels = levels, coverage = coverage_table(u, levels), quantiles = u,
                 theta = res$theta, n_test = nrow(u), n_samples = as.integer(n_samples),
                 n_failed = res$n_failed),
            class = "nbi_coverage")
}

# Fraction of test cases whose truth lies in the central interval of each level.
coverage_table <- function(u, levels) {
  dist <- abs(u - 0.5)
  out <- vapply(seq_len(ncol(u)), function(j) {
    vapply(levels, function(a) mean(dist[, j] <= a / 2 + 1e-9), numeric(1))
  }, numeric(length(levels)))
  out <- matrix(out, nrow = length(levels), ncol = ncol(u),
                dimnames = list(format(levels), colnames(u)))
  out
}

# Rows and columns of a grid of d panels, filled row by row (1 x 2, 2 x 2, 2 x 3, ...).
panel_grid <- function(d) {
  cols <- ceiling(sqrt(d))
  c(ceiling(d / cols), cols)
}

# Central binomial interval of the coverage of a calibrated posterior at each level.
coverage_band <- function(levels, n, mass = 0.95) {
  a <- (1 - mass) / 2
  cbind(lower = stats::qbinom(a, n, levels) / n, upper = stats::qbinom(1 - a, n, levels) / n)
}

#' @rdname nbi_coverage
#' @export
print.nbi_coverage <- function(x, levels = c(0.5, 0.68, 0.9, 0.95), ...) {
  cat(sprintf("<nbi coverage: %d test cases x %d posterior draws, central credible intervals>\n",
              x$n_test, x$n_samples))
  cov <- coverage_table(x$quantiles, levels)
  band <- coverage_band(levels, x$n_test)
  outside <- cov < band[, "lower"] - 1e-12 | cov > band[, "upper"] + 1e-12
  cells <- matrix(paste0(formatC(cov, format = "f", digits = 3), ifelse(outside, "*", " ")),
                  nrow = nrow(cov))
  tab <- data.frame(nominal = formatC(levels, format = "f", digits = 2), cells,
                    band = sprintf("[%.3f, %.3f]", band[, "lower"], band[, "upper"]),
                    check.names = FALSE)
  names(tab)[seq_len(ncol(cov)) + 1] <- colnames(cov)
  names(tab)[ncol(tab)] <- "95% band"
  print(tab, row.names = FALSE, right = TRUE)
  cat("empirical coverage per parameter; * outside the 95% binomial band of a calibrated posterior\n")
  invisible(x)
}

#' @rdname nbi_coverage
#' @export
plot.nbi_coverage <- function(x, col = "steelblue", ...) {
  if (length(col) != 1) stop("`col` must be a single colour", call. = FALSE)
  cov <- x$coverage
  lev <- x$levels
  d <- ncol(cov)
  nm <- colnames(cov)
  if (is.null(nm)) nm <- sprintf("theta[%d]", seq_len(d))
  band <- coverage_band(lev, x$n_test)
  op <- graphics::par(no.readonly = TRUE)
  on.exit(graphics::par(op))
  graphics::par(mfrow = panel_grid(d), mar = c(4, 4, 2, 1), mgp = c(2.4, 0.7, 0), pty = "s")
  extra <- list(...)
  if (length(extra)) graphics::par(extra)
  for (j in seq_len(d)) {
    graphics::plot(NA, xlim = c(0, 1), ylim = c(0, 1), xaxs = "i", yaxs = "i",
                   xlab = "nominal coverage", ylab = "empirical coverage", main = nm[j])
    graphics::polygon(c(lev, rev(lev)), c(band[, "lower"], rev(band[, "upper"])),
                      col = grDevices::adjustcolor(col, alpha.f = 0.2), border = NA)
    graphics::abline(0, 1, lty = 2, col = "grey40")
    graphics::lines(lev, cov[, j], col = col, lwd = 2)
  }
  invisible(x)
}

# ---- simulation-based calibration -----------------------------------------------------

#' Simulation-based calibration ranks
#'
#' Simulation-based calibration (Talts et al. 2018; seed 001, Figure 4): `n_test`
#' parameter sets are drawn from the prior and simulated, the engine's noise model is
#' applied once, and the surrogate posterior of every noisy observation is sampled (all at
#' once, in batched C calls; no importance weights). The rank of a true value is the
#' number of its posterior draws below it, 0..`n_samples`; for a calibrated posterior the
#' ranks are uniform.
#'
#' `print()` gives, per parameter, the p-value of a chi-square test of uniform ranks over
#' `bins` bins and the mean rank / `n_samples` (0.5 when unbiased).
#'
#' @section Reading the plot:
#' `plot()` draws a histogram of the ranks per parameter with a grey band for the 99%
#' binomial interval of each bin's count under uniformity. A U-shaped histogram means the
#' posterior is too narrow (overconfident: truths fall in its tails); a hump in the middle
#' means it is too wide (underconfident); a slope means it is biased (ranks piled on the
#' right: the posterior sits below the truths; on the left: above them).
#'
#' @inheritParams nbi_coverage
#' @param bins number of rank bins for the uniformity test and the histogram (at most
#'   `n_samples + 1`; larger values are reduced to it).
#' @param x an `nbi_sbc` object.
#' @param col colour of the histogram bars.
#' @return An object of class `nbi_sbc`, a list with
#'   \item{ranks}{an n_test x d integer matrix of ranks in 0..`n_samples`, with the
#'     parameter names as column names;}
#'   \item{theta}{the true parameters of the test cases;}
#'   \item{n_test, n_samples, bins}{the number of test cases used, of draws per case, and
#'     of bins.}
#'   Failed simulations, and test cases whose posterior could not get `n_samples` draws
#'   inside the prior's support, are dropped (with a warning). `print()` and `plot()`
#'   return `x` invisibly.
#' @seealso [nbi_coverage()] for the p-p (expected coverage) view of the same test.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' sbc <- nbi_sbc(eng, n_test = 20, n_samples = 200, bins = 5, seed = 2)
#' sbc
#' plot(sbc)
#' @export
nbi_sbc <- function(object, n_test = 200, n_samples = 1000, bins = 20, seed = NULL,
                    threads = NULL) {
  threads <- check_calibration_args(object, n_test, n_samples, seed, threads)
  check_count(bins, "bins", min = 2)
  run <- function() calibration_counts(object, n_test, n_samples, threads)
  res <- if (is.null(seed)) run() else with_seed(seed, run())
  structure(list(ranks = res$below, theta = res$theta, n_test = nrow(res$below),
                 n_samples = as.integer(n_samples),
                 bins = as.integer(min(bins, n_samples + 1)), n_failed = res$n_failed),
            class = "nbi_sbc")
}

# Bin of each rank 0..N when the N + 1 possible ranks are split into `bins` nearly equal
# groups of consecutive ranks; `prob` is each bin's probability under uniform ranks.
rank_bins <- function(n_samples, bins) {
  bins <- min(bins, n_samples + 1)
  of <- function(r) as.integer(floor(r * bins / (n_samples + 1))) + 1L
  width <- tabulate(of(0:n_samples), bins)
  list(bins = bins, of = of, prob = width / (n_samples + 1),
       lower = c(0, cumsum(width))[seq_len(bins)], upper = cumsum(width))
}

# Chi-square test of uniform ranks, one row per parameter.
sbc_stats <- function(x, bins) {
  rb <- rank_bins(x$n_samples, bins)
  n <- nrow(x$ranks)
  rows <- lapply(seq_len(ncol(x$ranks)), function(j) {
    obs <- tabulate(rb$of(x$ranks[, j]), rb$bins)
    expd <- n * rb$prob
    chisq <- sum((obs - expd)^2 / expd)
    data.frame(parameter = colnames(x$ranks)[j], mean_rank = mean(x$ranks[, j]) / x$n_samples,
               chisq = chisq, df = rb$bins - 1L,
               p_value = stats::pchisq(chisq, rb$bins - 1L, lower.tail = FALSE))
  })
  do.call(rbind, rows)
}

#' @rdname nbi_sbc
#' @export
print.nbi_sbc <- function(x, bins = x$bins, ...) {
  check_count(bins, "bins", min = 2)
  st <- sbc_stats(x, bins)
  cat(sprintf("<nbi SBC: %d test cases x %d posterior draws, ranks in %d bins>\n",
              x$n_test, x$n_samples, st$df[1] + 1L))
  tab <- data.frame(parameter = st$parameter,
                    `mean rank / n_samples` = formatC(st$mean_rank, format = "f", digits = 3),
                    chisq = formatC(st$chisq, format = "f", digits = 1),
                    `p-value` = format.pval(st$p_value, digits = 3, eps = 1e-16),
                    check.names = FALSE)
  print(tab, row.names = FALSE)
  cat("uniform ranks (p-value not small) and mean rank near 0.5 mean a calibrated posterior\n")
  invisible(x)
}

#' @rdname nbi_sbc
#' @export
plot.nbi_sbc <- function(x, bins = x$bins, col = "steelblue", ...) {
  check_count(bins, "bins", min = 2)
  if (length(col) != 1) stop("`col` must be a single colour", call. = FALSE)
  rb <- rank_bins(x$n_samples, bins)
  n <- nrow(x$ranks)
  d <- ncol(x$ranks)
  nm <- colnames(x$ranks)
  if (is.null(nm)) nm <- sprintf("theta[%d]", seq_len(d))
  lo <- stats::qbinom(0.005, n, rb$prob)
  hi <- stats::qbinom(0.995, n, rb$prob)
  op <- graphics::par(no.readonly = TRUE)
  on.exit(graphics::par(op))
  graphics::par(mfrow = panel_grid(d), mar = c(4, 4, 2, 1), mgp = c(2.4, 0.7, 0))
  extra <- list(...)
  if (length(extra)) graphics::par(extra)
  for (j in seq_len(d)) {
    counts <- tabulate(rb$of(x$ranks[, j]), rb$bins)
    graphics::plot(NA, xlim = c(0, x$n_samples + 1), ylim = c(0, max(counts, hi) * 1.05),
                   xaxs = "i", yaxs = "i", xlab = "rank of the true value", ylab = "count",
                   main = nm[j])
    graphics::rect(rb$lower, lo, rb$upper, hi, col = "grey85", border = NA)
    graphics::segments(rb$lower, n * rb$prob, rb$upper, n * rb$prob, col = "grey50")
    graphics::rect(rb$lower, 0, rb$upper, counts,
                   col = grDevices::adjustcolor(col, alpha.f = 0.6), border = col)
    graphics::box()
  }
  invisible(x)
}
