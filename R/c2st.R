# The classifier two-sample test (C2ST) of the sbibm benchmark: how well can a small MLP
# tell two samples apart? The classifier trains in C (src/diag/classifier.c).

#' Classifier two-sample test (C2ST)
#'
#' Trains a classifier to tell the draws of `a` from those of `b` and reports its held-out
#' accuracy: 0.5 when the two samples come from the same distribution, 1 when they are
#' perfectly separable. This is the C2ST metric of the simulation-based inference benchmark
#' (sbibm, Lueckmann et al. 2021), typically used to compare posterior draws with reference
#' draws.
#'
#' As in sbibm, both samples are z-scored with the mean and standard deviation of `a`
#' (a constant column is only centred), `a` is labelled 0 and `b` 1, and the classifier is
#' a multilayer perceptron with two hidden layers of `10 * d` ReLU units and a logistic
#' output, trained with Adam on the logistic loss with the defaults of scikit-learn's
#' `MLPClassifier` (learning rate 1e-3, minibatches of 200 rows, L2 penalty 1e-4 on the
#' weights, Glorot-uniform initialisation). The rows are split into `folds` stratified,
#' shuffled folds; for each fold a classifier is trained on the other folds and predicts
#' the held-out rows (class 1 when its probability exceeds 0.5). The result is the mean
#' held-out accuracy over the folds. Training reshuffles the minibatches every epoch and
#' stops early: 10% of the training rows (stratified) are held out for validation, and
#' training ends after `patience` epochs without an improvement of the validation loss by
#' more than 1e-4, or after `n_epochs` epochs; the parameters of the best epoch are kept.
#' (sbibm itself stops on the training loss after 10 epochs without improvement, within
#' 10,000 epochs.)
#'
#' @param a,b the two samples: numeric matrices with one draw per row and the same number
#'   of columns (a data frame of numeric columns, or a vector for one dimension, also
#'   works), or `nbi_posterior` objects, whose draws `$theta` are used (resampled to
#'   equally weighted draws with [nbi_resample()] when the posterior is weighted).
#' @param folds number of cross-validation folds; each sample needs at least `folds` rows.
#' @param hidden units in each of the two hidden layers (one number, or two for different
#'   widths); the default is ten per dimension.
#' @param n_epochs maximum number of training epochs per fold.
#' @param patience epochs without improvement of the validation loss before training stops.
#' @param seed optional seed for a reproducible result; the session's random-number stream
#'   is left as it was. Without it, [set.seed()] beforehand does the same.
#' @param threads OpenMP and BLAS threads of the C core (default
#'   `getOption("nbi.threads", 1)`).
#' @param batch_size minibatch size (capped at the number of training rows).
#' @param lr Adam's learning rate.
#' @param valid_fraction fraction of each training split held out for early stopping; 0
#'   stops on the training loss instead.
#' @return The mean held-out accuracy, a number of class `nbi_c2st` with attributes
#'   `folds` (the accuracy of each fold) and `epochs` (the epochs trained per fold);
#'   `as.numeric()` gives the plain number.
#' @references Lopez-Paz, D. and Oquab, M. (2017). Revisiting classifier two-sample tests.
#'   ICLR. Lueckmann, J.-M., Boelts, J., Greenberg, D., Goncalves, P. and Macke, J. (2021).
#'   Benchmarking simulation-based inference. AISTATS.
#' @examples
#' set.seed(1)
#' a <- matrix(rnorm(400), ncol = 2)
#' nbi_c2st(a, matrix(rnorm(400), ncol = 2), n_epochs = 100)          # near 0.5
#' nbi_c2st(a, matrix(rnorm(400, mean = 3), ncol = 2), n_epochs = 100) # near 1
#' @export
nbi_c2st <- function(a, b, folds = 5, hidden = 10 * ncol(a), n_epochs = 1000, patience = 50,
                     seed = NULL, threads = NULL, batch_size = 200, lr = 1e-3,
                     valid_fraction = 0.1) {
  if (!is.null(seed)) check_count(seed, "seed", min = 0)
  check_count(folds, "folds", min = 2)
  check_count(n_epochs, "n_epochs", min = 1, max = .Machine$integer.max)
  check_count(patience, "patience", min = 1, max = .Machine$integer.max)
  check_count(batch_size, "batch_size", min = 1, max = .Machine$integer.max)
  check_number(lr, "lr", 0, Inf, inclusive = FALSE)
  check_number(valid_fraction, "valid_fraction", 0, 0.5)
  threads <- default_threads(threads)
  seeded <- function(code) if (is.null(seed)) code else with_seed(seed, code)
  # the block below is evaluated in this function's frame: `a` becomes a matrix there before
  # `hidden`'s default, 10 * ncol(a), is first evaluated
  seeded({
    a <- c2st_sample(a, "a")
    b <- c2st_sample(b, "b")
    if (ncol(a) != ncol(b))
      stop(sprintf("`a` and `b` must have the same number of columns (dimensions); `a` has %d, `b` has %d",
                   ncol(a), ncol(b)), call. = FALSE)
    if (min(nrow(a), nrow(b)) < folds)
      stop(sprintf("`a` and `b` need at least `folds` (%d) rows each; `a` has %d, `b` has %d",
                   as.integer(folds), nrow(a), nrow(b)), call. = FALSE)
    if (!is.numeric(hidden) || !length(hidden) %in% 1:2)
      stop("`hidden` must be one or two whole numbers >= 1", call. = FALSE)
    for (h in hidden) check_count(h, "hidden", min = 1, max = 1e6)
    hidden <- rep_len(as.integer(hidden), 2)

    # z-score with the moments of `a`
    mu <- colMeans(a)
    s <- apply(a, 2, stats::sd)
    s[!is.finite(s) | s <= 0] <- 1
    x <- t(sweep(sweep(rbind(a, b), 2, mu), 2, s, "/"))  # one draw per column, for C
    y <- rep(c(0, 1), c(nrow(a), nrow(b)))
    fold <- c2st_folds(y, folds)
    opts <- list(h1 = hidden[1], h2 = hidden[2], epochs = n_epochs, batch = batch_size,
                 patience = patience, threads = threads, lr = lr, l2 = 1e-4, tol = 1e-4,
                 seed = 0)
    acc <- numeric(folds)
    epochs <- integer(folds)
    with_blas_threads(threads, for (k in seq_len(folds)) {
      test <- which(fold == k)
      train <- which(fold != k)
      valid <- c2st_valid(y[train], valid_fraction)
      tr <- train[!valid]
      va <- train[valid]
      opts$seed <- draw_seed()
      p <- .Call(C_r_c2st_fit_predict, x[, tr, drop = FALSE], y[tr],
                 if (length(va)) x[, va, drop = FALSE], if (length(va)) y[va],
                 x[, test, drop = FALSE], opts)
      acc[k] <- mean((p > 0.5) == (y[test] == 1))
      epochs[k] <- attr(p, "epochs")
    })
    structure(mean(acc), folds = acc, epochs = epochs, class = "nbi_c2st")
  })
}

#' @export
print.nbi_c2st <- function(x, digits = 3, ...) {
  acc <- attr(x, "folds")
  cat(sprintf("C2ST accuracy %s (0.5: indistinguishable, 1: separable)\n",
              format(as.numeric(x), digits = digits)))
  if (length(acc))
    cat(sprintf("  %d folds: %s\n", length(acc), paste(format(acc, digits = digits), collapse = " ")))
  invisible(x)
}

# One sample as a numeric matrix with a draw per row.
c2st_sample <- function(x, arg) {
  if (inherits(x, "nbi_posterior")) {
    check_posterior(x, arg)
    if (!is.null(x$log_weights) || !is.null(x$weights)) x <- nbi_resample(x)
    x <- x$theta
  } else if (is.data.frame(x)) {
    if (!all(vapply(x, is.numeric, logical(1))))
      stop(sprintf("`%s` must have only numeric columns", arg), call. = FALSE)
    x <- as.matrix(x)
  } else if (is.numeric(x) && is.null(dim(x))) {
    x <- matrix(x, ncol = 1)
  }
  if (!is.numeric(x) || !is.matrix(x))
    stop(sprintf("`%s` must be a numeric matrix (one draw per row), a data frame, a numeric vector or an nbi_posterior",
                 arg), call. = FALSE)
  if (ncol(x) < 1 || nrow(x) < 1)
    stop(sprintf("`%s` must have at least one row and one column", arg), call. = FALSE)
  if (!all(is.finite(x)))
    stop(sprintf("`%s` has NA or non-finite values", arg), call. = FALSE)
  storage.mode(x) <- "double"
  unname(x)
}

# Stratified, shuffled fold ids: each class in random order, ids dealt in turn (one cycle
# running through both classes), so fold sizes differ by at most one.
c2st_folds <- function(y, folds) {
  ord <- unlist(lapply(split(seq_along(y), y), function(i) i[sample.int(length(i))]))
  fold <- integer(length(y))
  fold[ord] <- (seq_along(ord) - 1L) %% folds + 1L
  fold
}

# Validation rows of a training split: a fraction of each class (at least one when the
# fraction is positive, never a whole class).
c2st_valid <- function(y, fraction) {
  valid <- logical(length(y))
  if (fraction <= 0) return(valid)
  for (i in split(seq_along(y), y)) {
    nv <- min(length(i) - 1L, ceiling(fraction * length(i)))
    if (nv > 0) valid[i[sample.int(length(i), nv)]] <- TRUE
  }
  valid
}
