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
#' @param time_params `NULL`, or the names of parameters that are times on the curves' own
#'   clock (e.g. the time of a microlensing event's peak, t0). The network then reads each
#'   curve relative to a reference epoch of its own, its peak (see `peak`), and learns
#'   these parameters relative to it: the posterior moves with the curve when its times
#'   are shifted. Without it a time parameter must be read off absolute times standardised
#'   over the whole span of the training epochs, which for a survey of several years
#'   leaves a short event's t0 a tiny fraction of that span (see "Time parameters").
#' @param peak which epoch is a curve's reference when `time_params` is given: `"max"`
#'   (the largest value, e.g. flux) or `"min"` (the smallest, e.g. magnitudes), after a
#'   running median of 3 epochs in time order (so that one outlier does not set it), among
#'   the epochs inside the prior's range of the first time parameter (all epochs when that
#'   range is infinite or holds none).
#' @section Time parameters: With `time_params`, a curve with reference epoch r is read
#'   with times asinh((t - r) / w), w a quarter of the prior's range of the first time
#'   parameter (t - r when that range is infinite): linear near the peak, where the time
#'   parameters are read, logarithmic far from it, so that years of baseline do not set the
#'   resolution at the peak. The network learns the posterior of theta - r for the time
#'   parameters (the reference is a function of the observation, so this is the same
#'   posterior, moved). `predict()` adds r back: draws, densities and importance weights
#'   are in the parameters as the prior gives them. The network also reads where r lies in
#'   the prior's window (from -1 at its start to 1 at its end), next to the pooled epochs:
#'   for a curve whose peak is only noise, t0 may be anywhere in the window, not anywhere
#'   around r, and without that input such curves got posteriors centred on their noise
#'   peak, too narrow (models fitted before 0.3.0 lack it). Draws outside the prior are
#'   redrawn. Check the calibration with [nbi_coverage()], or rely on importance weights.
#' @return An object of class `nbi_featurizer`.
#' @seealso `vignette("survey-light-curves", package = "nbi")`
#' @examples
#' featurizer_timeseries(d_model = 32, hidden = 64)
#' # an observation: 40 epochs at their own times, with errors
#' t <- sort(runif(40, 0, 100))
#' head(cbind(t = t, value = sin(t / 5) + rnorm(40, 0, 0.1), error = 0.1))
#' # microlensing light curves in magnitudes: t0 read relative to each curve's brightest epoch
#' featurizer_timeseries(time_params = "t0", peak = "min")
#' @export
featurizer_timeseries <- function(d_model = 32, heads = 4, layers = 2, hidden = 64, queries = 4,
                                  n_freq = 8, pool = "attention", bands = 1, dim_out = 32,
                                  time_params = NULL, peak = "max") {
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
  if (!is.null(time_params) && (!is.character(time_params) || !length(time_params) ||
                                anyNA(time_params) || !all(nzchar(time_params)) ||
                                anyDuplicated(time_params)))
    stop("`time_params` must be NULL or distinct parameter names", call. = FALSE)
  if (!is.character(peak) || length(peak) != 1 || !peak %in% c("max", "min"))
    stop("`peak` must be \"max\" or \"min\"", call. = FALSE)
  structure(list(type = "timeseries", d_model = as.integer(d_model), heads = as.integer(heads),
                 layers = as.integer(layers), hidden = as.integer(hidden),
                 queries = as.integer(queries), n_freq = as.integer(n_freq), pool = pool,
                 bands = as.integer(bands), dim_out = as.integer(dim_out),
                 time_params = time_params, peak = peak),
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

# The n_in x n matrix the C core reads: per curve its row count, its extras (where its
# reference epoch lies in the prior's window, with time parameters), then `rows` rows of
# width columns (standardised; rows beyond the count are zeros and never read).
ts_encode <- function(x, scale, featurizer, rows, width) {
  has_err <- ts_has_error(featurizer, width)
  n_extra <- ts_n_extra(scale$ref)
  vapply(x, function(s) {
    extra <- if (n_extra) attr(s, "ts_position") else numeric(0)
    if (length(extra) != n_extra) stop("internal: a curve lacks its reference position", call. = FALSE)
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
    c(nrow(s), extra, as.vector(t(out)))
  }, numeric(1 + n_extra + rows * width))
}

# Extras per curve: 1 (the reference epoch's position in the window) for models fitted with
# time parameters since 0.3.0, else 0.
ts_n_extra <- function(ref) if (isTRUE(ref$position)) 1L else 0L

# The length of a curve's column in the matrix ts_encode() makes: its row count, its extras,
# then `rows` rows of `width`.
ts_n_in <- function(rows, width, extra) as.integer(1L + extra + rows * width)

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
  extra <- as.integer(!is.null(featurizer$time_params))
  list(type = 4L, n_in = ts_n_in(rows, width, extra), rows = as.integer(rows),
       width = as.integer(width), has_error = ts_has_error(featurizer, width),
       bands = featurizer$bands, d_model = featurizer$d_model, heads = featurizer$heads,
       layers = featurizer$layers, hidden = featurizer$hidden, queries = featurizer$queries,
       freqs = as.double(freqs), pool = as.integer(featurizer$pool == "mean"),
       extra = extra, n_out = featurizer$dim_out)
}

# ---- time parameters: curves read relative to their own peak epoch ----

# How fit() finds each curve's reference epoch (NULL without time parameters): the columns
# of the time parameters, the window of epochs searched (the prior's range of the first
# one) and which extreme is the peak. Stored in the model's input scale.
ts_reference_spec <- function(featurizer, prior) {
  tp <- featurizer$time_params
  if (!is_ts_featurizer(featurizer) || is.null(tp)) return(NULL)
  idx <- match(tp, prior$names)
  if (anyNA(idx))
    stop(sprintf("`time_params`: %s not among the prior's parameters (%s)",
                 paste0("`", tp[is.na(idx)], "`", collapse = ", "),
                 paste(prior$names, collapse = ", ")), call. = FALSE)
  p <- prior_resolve(prior)
  window <- c(p$lower[idx[1]], p$upper[idx[1]])
  list(index = idx, window = window, peak = featurizer$peak,
       width = if (all(is.finite(window))) diff(window) / 4 else NA_real_, position = TRUE)
}

# A curve's reference epoch: the time of its peak value (largest or smallest, after a
# running median of 3 in time order) among the epochs inside the window.
ts_reference <- function(s, ref) {
  o <- order(s[, 1])
  t <- s[o, 1]
  v <- s[o, 2]
  if (length(v) >= 3) v <- stats::runmed(v, 3, endrule = "keep")
  inside <- t >= ref$window[1] & t <= ref$window[2]
  if (!any(inside)) inside <- rep(TRUE, length(t))
  k <- which(inside)
  k <- k[if (ref$peak == "max") which.max(v[k]) else which.min(v[k])]
  t[k]
}

# Curves and their parameters relative to each curve's reference epoch r: time parameters
# theta - r (theta may be NULL) and times asinh((t - r) / w), w a quarter of the window:
# linear near the peak, where the time parameters are read, logarithmic far from it, so
# that years of baseline do not set the resolution at the peak. Each curve carries where r
# lies in the window (-1 at its start, 1 at its end) as attribute "ts_position", which the
# network reads next to the pooled rows: the posterior of theta - r depends on it (a curve
# whose peak is noise leaves t0 anywhere in the window, not anywhere around r). Returns
# list(x, theta, r).
ts_relative <- function(x, theta, ref) {
  if (is.null(ref)) return(list(x = x, theta = theta, r = NULL))
  r <- vapply(x, ts_reference, 0, ref = ref)
  w <- ref$width
  x <- Map(function(s, ri) {
    s[, 1] <- if (is.finite(w)) asinh((s[, 1] - ri) / w) else s[, 1] - ri
    if (ts_n_extra(ref)) attr(s, "ts_position") <- ts_position(ri, ref$window)
    s
  }, x, r)
  if (!is.null(theta)) theta[, ref$index] <- theta[, ref$index] - r
  list(x = x, theta = theta, r = r)
}

# Where r lies in the window, -1 to 1 (clamped to +-2 outside it; 0 for an infinite one).
ts_position <- function(r, window) {
  if (!all(is.finite(window))) return(0)
  max(-2, min(2, (2 * r - window[1] - window[2]) / (window[2] - window[1])))
}

# The shifts of the observations' standardised parameters (d x n): the network's draws
# are theta - r for the time parameters, standardised by the model; z + shift is theta.
ts_shift <- function(r, ref, m) {
  if (is.null(r)) return(NULL)
  sh <- matrix(0, length(m$theta_mean), length(r))
  sh[ref$index, ] <- rep(r, each = length(ref$index)) / m$theta_sd[ref$index]
  sh
}

# Draws z (d x n, from C_r_model_sample; columns `cols` of enc's observations) moved to
# the parameters' own frame, and back (`sign = -1`, before C_r_model_log_prob): a shift,
# so log-densities do not change.
shift_z <- function(z, enc, cols, sign = 1) {
  if (is.null(enc$shift)) return(z)
  lp <- attr(z, "log_prob")
  z <- z + sign * enc$shift[, cols, drop = FALSE]
  attr(z, "log_prob") <- lp
  z
}
