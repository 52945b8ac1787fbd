# What the network sees: observations turned into the standardised n_in x n matrix the C
# core reads (one observation per column). Vectors and sequences are standardised per
# column or per channel; sets (featurizer_set_transformer) are standardised per token and
# padded to a common number of rows with token 0.

is_set_featurizer <- function(featurizer) identical(featurizer$type, "set_transformer")

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
  if (!is_set_featurizer(featurizer)) return(t(standardise(x, scale)))
  if (is.null(rows)) rows <- set_rows(x)
  w <- featurizer$n_values + 1
  vapply(x, function(s) {
    tok <- s[, 1]
    v <- (s[, -1, drop = FALSE] - scale$mean[tok, , drop = FALSE]) / scale$sd[tok, , drop = FALSE]
    out <- matrix(0, rows, w)
    out[seq_len(nrow(s)), ] <- cbind(tok, v)
    as.vector(t(out))
  }, numeric(rows * w))
}

# The flow spec with room for sets of `rows` rows (the parameters do not depend on it).
spec_for_rows <- function(spec, rows) {
  spec$feat$rows <- as.integer(rows)
  spec$feat$n_in <- as.integer(rows * (spec$feat$values + 1L))
  spec
}

# Observations given to predict() / nbi_log_prob() as a list of single observations.
obs_items <- function(object, x_obs, arg) {
  if (missing(x_obs) || is.null(x_obs))
    stop(sprintf("`%s` is missing", arg), call. = FALSE)
  f <- object$featurizer
  if (!is_set_featurizer(f)) {
    o <- check_observation(object, x_obs, arg)
    items <- lapply(seq_len(nrow(o$x)), function(i) o$x[i, ])
    nm <- if (is.list(x_obs) && !is.data.frame(x_obs)) names(x_obs) else rownames(x_obs)
    if (!o$single && length(nm) == length(items)) names(items) <- nm
    return(list(items = items, single = o$single))
  }
  single <- is.matrix(x_obs) || is.data.frame(x_obs)
  items <- if (single) list(x_obs) else x_obs
  if (!is.list(items) || !length(items))
    stop(sprintf("`%s` must be one set (a matrix or data frame) or a list of sets", arg),
         call. = FALSE)
  list(items = lapply(items, check_set, featurizer = f, arg = arg), single = single)
}

# The spec and standardised input matrix for a list of observations.
encode_obs <- function(object, items) {
  m <- object$model
  f <- object$featurizer
  if (!is_set_featurizer(f)) {
    x <- matrix(unlist(items, use.names = FALSE), nrow = length(items), byrow = TRUE)
    return(list(spec = spec_with_precision(m$spec, object), x = encode_input(x, m$x_scale, f)))
  }
  rows <- set_rows(items)
  list(spec = spec_with_precision(spec_for_rows(m$spec, rows), object),
       x = encode_input(items, m$x_scale, f, rows))
}
