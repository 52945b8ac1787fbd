# What the network sees: observations turned into the standardised n_in x n matrix the C
# core reads (one observation per column). Vectors and sequences are standardised per
# column or per channel; sets (featurizer_set_transformer) are standardised per token and
# padded to a common number of rows with token 0; light curves (featurizer_timeseries,
# R/timeseries.R) start with their row count and are padded with zero rows.

is_set_featurizer <- function(featurizer) identical(featurizer$type, "set_transformer")
# featurizers whose observations are matrices of any number of rows, given as lists
is_list_featurizer <- function(featurizer) is_set_featurizer(featurizer) || is_ts_featurizer(featurizer)

# One observation of a list featurizer, checked (`width`: a fitted model's curve columns).
check_item <- function(s, featurizer, arg, width = NULL) {
  if (is_ts_featurizer(featurizer)) check_curve(s, featurizer, arg, width) else
    check_set(s, featurizer, arg)
}

# A set observation as a numeric matrix: column 1 integer tokens in 1..n_tokens, then values.
check_set <- function(s, featurizer, arg) {
  if (is.data.frame(s)) s <- as.matrix(s)
  nv <- featurizer$n_values
  if (!is.numeric(s) || !is.matrix(s) || nrow(s) < 1 || ncol(s) != nv + 1)
    stop(sprintf("`%s`: a set observation must be a numeric matrix or data frame with %d columns (token, then %d value(s)) and at least one row",
                 arg, nv + 1, nv), call. = FALSE)
  tok <- s[, 1]
  if (anyNA(tok) || any(tok != round(tok)) || any(tok < 1) || any(tok > featurizer$n_tokens))
    stop(sprintf("`%s`: column 1 must hold integer tokens in 1..%d", arg, featurizer$n_tokens),
         call. = FALSE)
  if (!all(is.finite(s))) stop(sprintf("`%s` has NA or non-finite values", arg), call. = FALSE)
  storage.mode(s) <- "double"
  s
}

n_obs <- function(x) if (is.list(x)) length(x) else nrow(x)
take_obs <- function(x, i) if (is.list(x)) x[i] else x[i, , drop = FALSE]

# Standardisation constants fitted on (noisy) training inputs.
fit_input_scale <- function(x, featurizer) {
  if (is_ts_featurizer(featurizer)) return(c(ts_scale(x, featurizer), width = ncol(x[[1]])))
  if (!is_set_featurizer(featurizer)) return(input_scale(x, featurizer))
  nt <- featurizer$n_tokens
  nv <- featurizer$n_values
  rows <- do.call(rbind, x)
  mu <- matrix(0, nt, nv)
  sd <- matrix(1, nt, nv)
  for (k in seq_len(nt)) {
    r <- rows[rows[, 1] == k, -1, drop = FALSE]
    if (nrow(r) > 0) {
      sc <- column_scale(r)
      mu[k, ] <- sc$mean
      sd[k, ] <- sc$sd
    }
  }
  list(mean = mu, sd = sd)
}

set_rows <- function(x) max(vapply(x, nrow, integer(1)))

# n_in x n matrix for the C core; sets are padded to `rows` rows.
encode_input <- function(x, scale, featurizer, rows = NULL) {
  if (is_list_featurizer(featurizer) && is.null(rows)) rows <- set_rows(x)
  if (is_ts_featurizer(featurizer)) return(ts_encode(x, scale, featurizer, rows, scale$width))
  if (!is_set_featurizer(featurizer)) return(t(standardise(x, scale)))
  w <- featurizer$n_values + 1
  vapply(x, function(s) {
    tok <- s[, 1]
    v <- (s[, -1, drop = FALSE] - scale$mean[tok, , drop = FALSE]) / scale$sd[tok, , drop = FALSE]
    out <- matrix(0, rows, w)
    out[seq_len(nrow(s)), ] <- cbind(tok, v)
    as.vector(t(out))
  }, numeric(rows * w))
}

# The flow spec with room for sets or curves of `rows` rows (the parameters do not depend
# on it).
spec_for_rows <- function(spec, rows) {
  spec$feat$rows <- as.integer(rows)
  extra <- if (is.null(spec$feat$extra)) 0L else spec$feat$extra  # absent before 0.3.0
  spec$feat$n_in <- if (spec$feat$type == 4L) ts_n_in(rows, spec$feat$width, extra) else
    as.integer(rows * (spec$feat$values + 1L))
  spec
}

# Observations given to predict() / nbi_log_prob() as a list of single observations.
obs_items <- function(object, x_obs, arg) {
  if (missing(x_obs) || is.null(x_obs))
    stop(sprintf("`%s` is missing", arg), call. = FALSE)
  f <- object$featurizer
  if (!is_list_featurizer(f)) {
    o <- check_observation(object, x_obs, arg)
    items <- lapply(seq_len(nrow(o$x)), function(i) o$x[i, ])
    nm <- if (is.list(x_obs) && !is.data.frame(x_obs)) names(x_obs) else rownames(x_obs)
    if (!o$single && length(nm) == length(items)) names(items) <- nm
    return(list(items = items, single = o$single))
  }
  single <- is.matrix(x_obs) || is.data.frame(x_obs)
  items <- if (single) list(x_obs) else x_obs
  what <- if (is_ts_featurizer(f)) "light curve" else "set"
  if (!is.list(items) || !length(items))
    stop(sprintf("`%s` must be one %s (a matrix or data frame) or a list of them", arg, what),
         call. = FALSE)
  out <- lapply(items, check_item, featurizer = f, arg = arg, width = object$model$x_scale$width)
  list(items = out, single = single)
}

# The spec and standardised input matrix for a list of observations.
encode_obs <- function(object, items) {
  m <- object$model
  f <- object$featurizer
  if (!is_list_featurizer(f)) {
    x <- matrix(unlist(items, use.names = FALSE), nrow = length(items), byrow = TRUE)
    return(list(spec = spec_with_precision(m$spec, object), x = encode_input(x, m$x_scale, f)))
  }
  rows <- set_rows(items)
  rel <- if (is_ts_featurizer(f)) ts_relative(items, NULL, m$x_scale$ref) else list(x = items)
  list(spec = spec_with_precision(spec_for_rows(m$spec, rows), object),
       x = encode_input(rel$x, m$x_scale, f, rows), shift = ts_shift(rel$r, m$x_scale$ref, m))
}

# Simulator outputs as an n x p numeric matrix (vector observations).
as_training_x <- function(x, n, featurizer = NULL) {
  if (n < 2) stop("at least 2 simulations are needed to train", call. = FALSE)
  if (is_list_featurizer(featurizer)) {
    what <- if (is_ts_featurizer(featurizer)) "light curves" else "sets"
    if (!is.list(x) || is.data.frame(x))
      stop(sprintf("`x`: %s must come as a list of matrices", what), call. = FALSE)
    if (length(x) != n) stop(sprintf("`x` has %d %s but `theta` has %d rows", length(x), what, n),
                             call. = FALSE)
    if (is_ts_featurizer(featurizer)) return(check_curves(x, featurizer, "x"))
    return(lapply(x, check_set, featurizer = featurizer, arg = "x"))
  }
  if (is.data.frame(x)) x <- as.matrix(x)
  raw_dim <- NULL
  if (is.list(x)) {
    raw_dim <- if (is.matrix(x[[1]]) || is.data.frame(x[[1]])) dim(x[[1]]) else length(x[[1]])
    x <- lapply(x, flatten_obs)
    lens <- lengths(x)
    if (!all(vapply(x, is.numeric, logical(1))) || length(unique(lens)) != 1)
      stop("`x`: observations must all have the same shape (numeric vectors of one length, or matrices of one size)",
           call. = FALSE)
    x <- matrix(unlist(x, use.names = FALSE), nrow = length(x), byrow = TRUE)
  }
  if (is.numeric(x) && is.null(dim(x))) x <- matrix(x, ncol = 1)
  if (!is.numeric(x) || !is.matrix(x)) stop("`x` must be a numeric matrix, one simulation per row",
                                            call. = FALSE)
  if (nrow(x) != n) stop(sprintf("`x` has %d rows but `theta` has %d", nrow(x), n), call. = FALSE)
  if (!all(is.finite(x))) stop("`x` has NA or non-finite values", call. = FALSE)
  storage.mode(x) <- "double"
  attr(x, "raw_dim") <- if (is.null(raw_dim)) ncol(x) else raw_dim
  x
}


pool_x <- function(xs) {
  if (is.list(xs[[1]])) return(do.call(c, xs))
  out <- do.call(rbind, xs)
  attr(out, "raw_dim") <- attr(xs[[1]], "raw_dim")
  out
}

# One observation as a vector; a length x channels matrix becomes position-major (the
# channels of each position together), the layout of the sequence featurizer.
flatten_obs <- function(o) {
  if (is.data.frame(o)) o <- as.matrix(o)
  if (is.matrix(o)) as.vector(t(o)) else o
}

# Standardisation constants of the network input: per column, or per channel (pooled over
# positions) for sequence featurizers.
input_scale <- function(m, featurizer) {
  if (featurizer$type != "resnet_gru" || featurizer$channels == 0) return(column_scale(m))
  C <- featurizer$channels
  ch <- (seq_len(ncol(m)) - 1L) %% C
  per <- lapply(0:(C - 1), function(k) column_scale(matrix(m[, ch == k], ncol = 1)))
  list(mean = vapply(per, `[[`, 0, "mean")[ch + 1L], sd = vapply(per, `[[`, 0, "sd")[ch + 1L])
}

column_scale <- function(m) {
  mu <- colMeans(m)
  s <- sqrt(pmax(colMeans(m^2) - mu^2, 0) * nrow(m) / max(1, nrow(m) - 1))
  s[!is.finite(s) | s < 1e-12 * pmax(1, abs(mu))] <- 1  # constant columns are only centred
  list(mean = mu, sd = s)
}

standardise <- function(m, sc) t((t(m) - sc$mean) / sc$sd)
