# Light curves with their own epochs: the featurizer_timeseries() constructor and what its
# observations need (checks, standardisation, the time frequencies, encoding for the C
# core, numeric noise). An observation is a numeric matrix with one row per epoch and
# columns t, value, [error], [band].

#' Featurizer for irregularly sampled time series
#'
#' Reads light curves (or any series) given one matrix per object, one row per epoch, with
#' columns `t`, `value`, optionally `error` (the 1-sigma error of each value) and optionally
#' `band` (whole numbers 1..`bands`, when `bands > 1`), in that order. Every object may have
#' its own epochs and its own number of them (from 1 to a million rows; the order of the rows
#' does not matter). One network, trained once, then reads every cadence of a survey.
#'
#' The network, per row: the inputs (t, sin and cos of \eqn{2\pi f_k t} for `n_freq` time
#' frequencies, value, error, one-hot band) go through an MLP (`layers` hidden layers of
#' `hidden` units, GELU) to a vector of `d_model` numbers; `queries` learned queries then
#' pool the rows of each object by multi-head attention (Lee et al. 2019's pooling by
#' multi-head attention, `heads` heads), next to the plain mean of the rows and the object's
#' log number of rows, (log n - 4) / 2 (means and attention forget how many epochs there
#' were, and that sets how narrow a posterior is); a linear map gives the `dim_out` features
#' the flow is conditioned on. With `pool = "mean"` the attention is left out (a deep set).
#'
#' Why this design (measured in `bench/timeseries.R`, see `bench/RESULTS.md`): its cost is
#' linear in the number of epochs with no padding computed (a batch's curves are packed one
#' after the other), nothing depends on the order of the rows (so no sorting, and gaps need
#' no special input), and every product is a large matrix product over all the rows of a
#' batch, which is what a CPU does fastest. Self-attention between epochs (a set transformer)
#' costs epochs^2 per curve, and a recurrent network runs one epoch after the other: at its
#' defaults it trains on about 180,000 epochs of light curve per second on 2 cores at 100,
#' 400 and 1,000 epochs per curve, 2 to 3 times as many curves per second as
#' [featurizer_resnet_gru()] on regular grids of the same lengths, in about a third of the
#' memory per batch.
#'
#' Times are standardised with the mean and sd of all training epochs, values per band, and
#' errors by their band's value sd. The frequencies (in standardised time) are spaced
#' logarithmically between one cycle over twice the span of the training epochs and one
#' cycle over two typical spacings between consecutive epochs; they are stored in the
#' fitted model.
#'
#' A numeric `noise` of the engine adds `noise * error * N(0, 1)` to each value when the
#' curves have an error column (so `noise = 1` draws each epoch's noise from its own error
#' bar), else `noise * N(0, 1)`.
#'
#' @param d_model width of each epoch's embedding (a multiple of `heads`).
#' @param heads attention heads of the pooling.
#' @param layers hidden layers of the per-epoch MLP (>= 0).
#' @param hidden units per hidden layer of the per-epoch MLP.
#' @param queries learned pooling queries.
#' @param n_freq time frequencies (0 for none).
#' @param pool `"attention"` (attention pooling and the mean) or `"mean"` (the mean only).
#' @param bands number of bands (filters); with more than 1, the last column of every
#'   observation gives the band.
#' @param dim_out size of the conditioning vector the featurizer produces.
#' @return An object of class `nbi_featurizer`.
#' @seealso `vignette("survey-light-curves", package = "nbi")`
#' @examples
#' featurizer_timeseries(d_model = 32, hidden = 64)
#' # an observation: 40 epochs at their own times, with errors
#' t <- sort(runif(40, 0, 100))
#' head(cbind(t = t, value = sin(t / 5) + rnorm(40, 0, 0.1), error = 0.1))
#' @export
featurizer_timeseries <- function(d_model = 32, heads = 4, layers = 2, hidden = 64, queries = 4,
                                  n_freq = 8, pool = "attention", bands = 1, dim_out = 32) {
  check_count(d_model, "d_model", min = 1)
  check_count(heads, "heads", min = 1)
  if (d_model %% heads != 0) stop("`d_model` must be a multiple of `heads`", call. = FALSE)
  check_count(layers, "layers", min = 0, max = 16)
  check_count(hidden, "hidden", min = 1)
  check_count(queries, "queries", min = 1, max = 1024)
  check_count(n_freq, "n_freq", min = 0, max = 1024)
  if (!is.character(pool) || length(pool) != 1 || !pool %in% c("attention", "mean"))
    stop("`pool` must be \"attention\" or \"mean\"", call. = FALSE)
  check_count(bands, "bands", min = 1, max = 1000)
  check_count(dim_out, "dim_out", min = 1)
  structure(list(type = "timeseries", d_model = as.integer(d_model), heads = as.integer(heads),
                 layers = as.integer(layers), hidden = as.integer(hidden),
                 queries = as.integer(queries), n_freq = as.integer(n_freq), pool = pool,
                 bands = as.integer(bands), dim_out = as.integer(dim_out)),
            class = "nbi_featurizer")
}

is_ts_featurizer <- function(featurizer) identical(featurizer$type, "timeseries")

# The columns a curve must have: 2 + error + band; `width` NULL accepts either error choice.
ts_widths <- function(featurizer, width = NULL) {
  if (!is.null(width)) return(width)
  (2:3) + (featurizer$bands > 1)
}

# One light curve as a numeric matrix (t, value, [error], [band]), checked.
check_curve <- function(s, featurizer, arg, width = NULL) {
  if (is.data.frame(s)) s <- as.matrix(s)
  w <- ts_widths(featurizer, width)
  if (!is.numeric(s) || !is.matrix(s) || nrow(s) < 1 || !ncol(s) %in% w)
    stop(sprintf("`%s`: a light curve must be a numeric matrix or data frame with %s columns (t, value%s%s) and at least one row",
                 arg, paste(w, collapse = " or "),
                 if (length(w) > 1 || w[1] - (featurizer$bands > 1) == 3) ", [error]" else "",
                 if (featurizer$bands > 1) ", band" else ""), call. = FALSE)
  if (!all(is.finite(s))) stop(sprintf("`%s` has NA or non-finite values", arg), call. = FALSE)
  if (featurizer$bands > 1) {
    b <- s[, ncol(s)]
    if (any(b != round(b)) || any(b < 1) || any(b > featurizer$bands))
      stop(sprintf("`%s`: the last column must hold bands in 1..%d", arg, featurizer$bands),
           call. = FALSE)
  }
  if (ncol(s) - (featurizer$bands > 1) == 3 && any(s[, 3] < 0))
    stop(sprintf("`%s`: errors (column 3) must be >= 0", arg), call. = FALSE)
  storage.mode(s) <- "double"
  dimnames(s) <- NULL
  s
}

# All curves of a training set, checked, with one width.
check_curves <- function(x, featurizer, arg) {
  x <- lapply(x, check_curve, featurizer = featurizer, arg = arg)
  w <- unique(vapply(x, ncol, 1L))
  if (length(w) > 1)
    stop(sprintf("`%s`: every light curve must have the same columns (found widths %s)", arg,
                 paste(w, collapse = ", ")), call. = FALSE)
  x
}

ts_has_error <- function(featurizer, width) as.integer(width - (featurizer$bands > 1) == 3L)
ts_band <- function(s, featurizer) if (featurizer$bands > 1) s[, ncol(s)] else rep(1, nrow(s))

# Standardisation: t pooled over all epochs, values per band, errors by their band's sd.
ts_scale <- function(x, featurizer) {
  rows <- do.call(rbind, x)
  nb <- featurizer$bands
  band <- if (nb > 1) rows[, ncol(rows)] else rep(1, nrow(rows))
  tsc <- column_scale(rows[, 1, drop = FALSE])
  mu <- rep(0, nb)
  sd <- rep(1, nb)
  for (k in seq_len(nb)) {
    v <- rows[band == k, 2, drop = FALSE]
    if (nrow(v) > 0) {
      sc <- column_scale(v)
      mu[k] <- sc$mean
      sd[k] <- sc$sd
    }
  }
  list(t_mean = tsc$mean, t_sd = tsc$sd, mean = mu, sd = sd)
}

# The time frequencies in standardised time: n_freq of them, log-spaced from one cycle per
# twice the span of the epochs to one per two typical spacings (median over curves).
ts_freqs <- function(x, scale, n_freq) {
  if (n_freq == 0) return(numeric(0))
  ts <- lapply(x, function(s) (s[, 1] - scale$t_mean) / scale$t_sd)
  span <- diff(range(unlist(ts, use.names = FALSE)))
  dts <- vapply(ts[seq_len(min(length(ts), 2000L))], function(t) {
    d <- diff(sort(t))
    d <- d[d > 0]
    if (length(d)) stats::median(d) else NA_real_
  }, 0)
  dt <- stats::median(dts, na.rm = TRUE)
  if (!is.finite(span) || span <= 0) span <- 1
  if (!is.finite(dt) || dt <= 0 || dt > span) dt <- span / 10
  if (n_freq == 1) return(1 / (2 * span))
  exp(seq(log(1 / (2 * span)), log(1 / (2 * dt)), length.out = n_freq))
}

# The n_in x n matrix the C core reads: per curve its row count, then `rows` rows of width
# columns (standardised; rows beyond the count are zeros and never read).
ts_encode <- function(x, scale, featurizer, rows, width) {
  has_err <- ts_has_error(featurizer, width)
  vapply(x, function(s) {
    if (nrow(s) > rows)
      stop(sprintf("a light curve has %d epochs, more than the %d the network was sized for",
                   nrow(s), rows), call. = FALSE)
    b <- ts_band(s, featurizer)
    z <- s
    z[, 1] <- (s[, 1] - scale$t_mean) / scale$t_sd
    z[, 2] <- (s[, 2] - scale$mean[b]) / scale$sd[b]
    if (has_err) z[, 3] <- s[, 3] / scale$sd[b]
    out <- matrix(0, rows, width)
    out[seq_len(nrow(s)), ] <- z
    c(nrow(s), as.vector(t(out)))
  }, numeric(1 + rows * width))
}

# Numeric noise for curves: value + noise * error * z (or noise * z without errors).
ts_numeric_noise <- function(x, noise, featurizer) {
  if (length(noise) != 1)
    stop("`noise` for light curves must be one number (a multiple of each epoch's error)",
         call. = FALSE)
  lapply(x, function(s) {
    e <- if (ts_has_error(featurizer, ncol(s))) s[, 3] else 1
    s[, 2] <- s[, 2] + noise * e * stats::rnorm(nrow(s))
    s
  })
}

# The C spec of the featurizer for curves of `rows` rows and `width` columns.
ts_spec <- function(featurizer, rows, width, freqs) {
  list(type = 4L, n_in = as.integer(1 + rows * width), rows = as.integer(rows),
       width = as.integer(width), has_error = ts_has_error(featurizer, width),
       bands = featurizer$bands, d_model = featurizer$d_model, heads = featurizer$heads,
       layers = featurizer$layers, hidden = featurizer$hidden, queries = featurizer$queries,
       freqs = as.double(freqs), pool = as.integer(featurizer$pool == "mean"),
       n_out = featurizer$dim_out)
}
