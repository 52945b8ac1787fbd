# Training an engine's network on (theta, x): the split, standardisation, the noise model
# applied to every batch, and the one .Call to the C trainer.

# A numeric `noise` gives one sd for all or one per value: any other length is an error
# (it was recycled).
check_noise_length <- function(noise, p, what) {
  if (is.numeric(noise) && length(noise) != 1L && length(noise) != p)
    stop(sprintf("`noise` has %d sds but the simulations have %d %s: give one sd for all, or one per value",
                 length(noise), p, what), call. = FALSE)
}

# x (a matrix) plus independent Gaussian noise with sd `sd` (one, or one per column). The
# same noise is drawn in C for training batches (train/train.c), on the trainer's streams.
gaussian_noise <- function(x, sd) {
  x + matrix(stats::rnorm(length(x)), nrow(x)) * rep(rep_len(sd, ncol(x)), each = nrow(x))
}

# The engine's noise model applied to a batch of simulations (one fresh draw).
apply_noise <- function(noise, x, theta) {
  if (is.null(noise)) return(x)
  if (is.list(x)) return(apply_set_noise(noise, x, theta))
  if (is.numeric(noise)) return(gaussian_noise(x, noise))
  out <- noise(x, theta)
  if (is.data.frame(out)) out <- as.matrix(out)
  if (is.numeric(out) && is.null(dim(out)) && nrow(x) == 1) out <- matrix(out, 1)
  if (!is.numeric(out) || !is.matrix(out) || nrow(out) != nrow(x))
    stop(sprintf("`noise` must return a numeric matrix with %d rows (one per simulation)",
                 nrow(x)), call. = FALSE)
  if (!all(is.finite(out))) stop("`noise` returned NA or non-finite values", call. = FALSE)
  storage.mode(out) <- "double"
  out
}

# Sets: a number (or one per value column) adds Gaussian noise to the values; a closure
# takes and returns the list of set matrices.
apply_set_noise <- function(noise, x, theta) {
  if (is.numeric(noise))
    return(lapply(x, function(s) {
      s[, -1] <- gaussian_noise(s[, -1, drop = FALSE], noise)
      s
    }))
  out <- noise(x, theta)
  if (!is.list(out) || length(out) != length(x))
    stop(sprintf("`noise` must return a list of %d sets", length(x)), call. = FALSE)
  out
}

# Trains on (theta, x). With `warm = TRUE` the engine's current network, standardisation
# and history are kept and training continues from its parameters (later SNPE rounds).
# `average`: caps of the decay of the two iterate averages validated (c(cap, 0): one; 0: none).
train_engine <- function(object, theta, x, n_epochs, batch_size, lr, valid_fraction, patience,
                         clip, average, threads, verbose, round, t0, warm = FALSE,
                         rescale = !warm) {
  n <- nrow(theta)
  n_valid <- if (valid_fraction > 0) max(1L, floor(valid_fraction * n)) else 0L
  if (n - n_valid < 1) stop("too few simulations for the validation split", call. = FALSE)
  perm <- sample.int(n)
  iv <- perm[seq_len(n_valid)]
  it <- perm[seq.int(n_valid + 1L, n)]
  noise <- object$noise
  f <- object$featurizer
  sets <- is_set_featurizer(f)
  check_noise_length(noise, if (sets) f$n_values else ncol(x), if (sets) "value columns" else "values")
  x_train_raw <- take_obs(x, it)
  th_train <- theta[it, , drop = FALSE]
  xn_train <- apply_noise(noise, x_train_raw, th_train)
  rows <- if (sets) set_rows(x) else NULL
  n_in <- if (sets) rows * (f$n_values + 1L) else ncol(xn_train)
  m <- object$model
  if (warm) {
    spec <- if (sets) spec_for_rows(m$spec, rows) else m$spec
    params <- m$params
    if (!sets && n_in != m$n_in) stop("the noise output changed size between rounds", call. = FALSE)
  } else {
    spec <- model_spec(f, object$flow, n_in = n_in, d = ncol(theta))
    params <- model_init(spec, object$flow$seed)
  }
  xs <- if (rescale) fit_input_scale(xn_train, f) else m$x_scale
  ts <- if (rescale) column_scale(th_train) else list(mean = m$theta_mean, sd = m$theta_sd)
  encode <- function(v) encode_input(v, xs, f, rows)
  c_noise <- is.numeric(noise) && !sets  # drawn in C, per batch
  noise_sd <- if (c_noise) rep_len(noise, n_in) / xs$sd else NULL
  x_train_std <- encode(if (c_noise) x_train_raw else xn_train)
  prepare <- if (!is.null(noise) && !c_noise)
    function(epoch) encode(apply_noise(noise, x_train_raw, th_train)) else NULL
  x_valid_std <- th_valid_std <- NULL
  if (n_valid > 0) {
    x_valid_std <- encode(apply_noise(noise, take_obs(x, iv), theta[iv, , drop = FALSE]))
    th_valid_std <- t(standardise(theta[iv, , drop = FALSE], ts))
  }
  # progress through progressr, one step per epoch (silent unless the user enabled handlers)
  prog <- progressr::progressor(steps = n_epochs)
  opts <- list(epochs = n_epochs, batch = batch_size, patience = patience, threads = threads,
               lr = lr, clip = clip, seed = draw_seed(), verbose = as.integer(verbose),
               average = average[1], average2 = average[2],
               progress = function(epoch, train, valid)
                 prog(sprintf("round %d, epoch %d: validation loss %.4f", round, epoch, valid)))
  spec <- spec_with_precision(spec, object)
  res <- with_blas_threads(1L, .Call(C_r_train, spec, params, x_train_std,
                                          t(standardise(th_train, ts)), x_valid_std,
                                          th_valid_std, noise_sd, prepare, opts))
  if (res$status == 1)
    stop("training failed: no finite loss in an epoch; try a smaller `lr`", call. = FALSE)
  # the out-of-distribution check's calibration (R/ood.R), on inputs as noisy as the
  # network saw them (numeric noise is drawn in C per batch: drawn here once for it)
  x_cal <- x_train_std
  if (ncol(x_cal) > 5000L) x_cal <- x_cal[, round(seq(1, ncol(x_cal), length.out = 5000L)), drop = FALSE]
  if (c_noise) x_cal <- x_cal + noise_sd * matrix(stats::rnorm(length(x_cal)), nrow(x_cal))
  ood <- ood_calibrate(spec, res$params, x_cal, x_valid_std, threads)
  object$model <- list(spec = spec, params = res$params, theta_mean = ts$mean,
                       theta_sd = ts$sd, x_scale = xs, x_mean = xs$mean, x_sd = xs$sd,
                       n_in = n_in, names = colnames(theta), ood = ood)
  if (!sets) object$x_dim <- attr(x, "raw_dim")
  epochs <- data.frame(round = round, epoch = seq_along(res$train_loss),
                       train_loss = res$train_loss, valid_loss = res$valid_loss, lr = res$lr)
  object$history$epochs <- if (warm) rbind(object$history$epochs, epochs) else epochs
  object$history$best_epoch <- res$best_epoch
  object
}
