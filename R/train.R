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

# The engine's noise model applied to a batch of simulations (one fresh draw): list(x,
# theta, n_cut). A noise function returns the noisy x, or list(x = , theta = , cut = ) when
# the augmentation changes the parameters (theta) or cuts simulations (cut: logical, one per
# simulation; for list observations an element may also be nbi_cut()). Cut simulations are
# replaced by copies of randomly chosen kept ones of the same draw, so the batch is a sample
# of the selected population.
apply_noise <- function(noise, x, theta, featurizer = NULL, prior = NULL) {
  if (is.null(noise)) return(list(x = x, theta = theta, n_cut = 0L))
  if (is.numeric(noise)) {
    x <- if (is_ts_featurizer(featurizer)) ts_numeric_noise(x, noise, featurizer) else
      if (is.list(x)) apply_set_noise(noise, x) else gaussian_noise(x, noise)
    return(list(x = x, theta = theta, n_cut = 0L))
  }
  out <- noise(x, theta)
  aug <- is.list(out) && !is.data.frame(out) && !is.null(names(out)) && "x" %in% names(out) &&
    all(names(out) %in% c("x", "theta", "cut"))
  theta_new <- if (aug && !is.null(out$theta)) check_noise_theta(out$theta, theta, prior) else theta
  cut <- if (aug && !is.null(out$cut)) out$cut else NULL
  if (aug) out <- out$x
  if (is.list(x)) {
    if (!is.list(out) || is.data.frame(out) || length(out) != length(x))
      stop(sprintf("`noise` must return a list of %d observations (or list(x = , theta = , cut = ))",
                   length(x)), call. = FALSE)
    marked <- vapply(out, inherits, logical(1), what = "nbi_cut")
    cut <- if (is.null(cut)) marked else check_cut(cut, length(x)) | marked
  } else {
    if (is.data.frame(out)) out <- as.matrix(out)
    if (is.numeric(out) && is.null(dim(out)) && nrow(x) == 1) out <- matrix(out, 1)
    if (!is.numeric(out) || !is.matrix(out) || nrow(out) != nrow(x))
      stop(sprintf("`noise` must return a numeric matrix with %d rows (one per simulation)",
                   nrow(x)), call. = FALSE)
    storage.mode(out) <- "double"
    if (!is.null(cut)) cut <- check_cut(cut, nrow(x))
  }
  n_cut <- if (is.null(cut)) 0L else sum(cut)
  if (n_cut > 0) {
    keep <- which(!cut)
    if (!length(keep)) stop("the noise function cut every simulation; nothing is left to train on",
                            call. = FALSE)
    from <- keep[sample.int(length(keep), n_cut, replace = TRUE)]
    if (is.list(out)) out[cut] <- out[from] else out[cut, ] <- out[from, , drop = FALSE]
    theta_new[cut, ] <- theta_new[from, , drop = FALSE]
  }
  if (is.list(out)) {
    if (is_ts_featurizer(featurizer)) out <- check_curves(out, featurizer, "the output of `noise`")
  } else if (!all(is.finite(out))) stop("`noise` returned NA or non-finite values", call. = FALSE)
  list(x = out, theta = theta_new, n_cut = n_cut)
}

check_cut <- function(cut, n) {
  if (!is.logical(cut) || length(cut) != n || anyNA(cut))
    stop(sprintf("`noise`: `cut` must be TRUE/FALSE for each of the %d simulations", n),
         call. = FALSE)
  cut
}

# The parameters a noise function returned: the old matrix's shape, finite, in the prior.
check_noise_theta <- function(th, old, prior) {
  if (is.data.frame(th)) th <- as.matrix(th)
  if (!is.numeric(th) || !is.matrix(th) || !identical(dim(th), dim(old)))
    stop(sprintf("`noise` must return `theta` as a %d x %d numeric matrix", nrow(old), ncol(old)),
         call. = FALSE)
  if (!all(is.finite(th))) stop("`noise` returned NA or non-finite `theta`", call. = FALSE)
  storage.mode(th) <- "double"
  colnames(th) <- colnames(old)
  if (!is.null(prior)) {
    out <- !is.finite(log_prior(prior, th))
    if (any(out))
      stop(sprintf("`noise` returned %d parameter set(s) outside the prior's support (first: %s); the prior must describe the parameters as the augmentation leaves them",
                   sum(out), paste(format(th[which(out)[1], ], digits = 6), collapse = ", ")),
           call. = FALSE)
  }
  th
}

# Sets: a number (or one per value column) adds Gaussian noise to the values.
apply_set_noise <- function(noise, x) {
  lapply(x, function(s) {
    s[, -1] <- gaussian_noise(s[, -1, drop = FALSE], noise)
    s
  })
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
  lists <- is_list_featurizer(f)
  ts <- is_ts_featurizer(f)
  if (!ts) check_noise_length(noise, if (lists) f$n_values else ncol(x),
                              if (lists) "value columns" else "values")
  x_train_raw <- take_obs(x, it)
  th_train_raw <- theta[it, , drop = FALSE]
  m <- object$model
  # time parameters: curves and parameters relative to each curve's own peak epoch
  ref <- if (warm) m$x_scale$ref else ts_reference_spec(f, object$prior)
  noisy <- function(x, th) {
    d <- apply_noise(noise, x, th, f, object$prior)
    rel <- ts_relative(d$x, d$theta, ref)
    d$x <- rel$x
    d$theta <- rel$theta
    d
  }
  drawn <- noisy(x_train_raw, th_train_raw)
  xn_train <- drawn$x
  th_train <- drawn$theta
  n_cut <- drawn$n_cut
  rows <- if (lists) set_rows(x) else NULL
  xs <- if (rescale) fit_input_scale(xn_train, f) else m$x_scale
  if (rescale && !is.null(ref)) xs$ref <- ref
  width <- if (ts) xs$width else NULL
  n_in <- if (ts) ts_n_in(rows, width, ts_n_extra(xs$ref)) else
    if (lists) rows * (f$n_values + 1L) else ncol(xn_train)
  if (warm) {
    spec <- if (lists) spec_for_rows(m$spec, rows) else m$spec
    params <- m$params
    if (!lists && n_in != m$n_in) stop("the noise output changed size between rounds", call. = FALSE)
  } else {
    spec <- if (ts) list(feat = ts_spec(f, rows, width, ts_freqs(xn_train, xs, f$n_freq))) else NULL
    spec <- model_spec(f, object$flow, n_in = n_in, d = ncol(theta), feat = spec$feat)
    params <- model_init(spec, object$flow$seed)
  }
  ts_ <- if (rescale) column_scale(th_train) else list(mean = m$theta_mean, sd = m$theta_sd)
  encode <- function(v) encode_input(v, xs, f, rows)
  c_noise <- is.numeric(noise) && !lists  # drawn in C, per batch
  noise_sd <- if (c_noise) rep_len(noise, n_in) / xs$sd else NULL
  x_train_std <- encode(if (c_noise) x_train_raw else xn_train)
  th_train_std <- t(standardise(if (c_noise) th_train_raw else th_train, ts_))
  prepare <- if (!is.null(noise) && !c_noise) function(epoch) {
    d <- noisy(x_train_raw, th_train_raw)
    n_cut <<- n_cut + d$n_cut
    list(encode(d$x), t(standardise(d$theta, ts_)))
  } else NULL
  x_valid_std <- th_valid_std <- NULL
  if (n_valid > 0) {
    dv <- noisy(take_obs(x, iv), theta[iv, , drop = FALSE])
    n_cut <- n_cut + dv$n_cut
    x_valid_std <- encode(dv$x)
    th_valid_std <- t(standardise(dv$theta, ts_))
  }
  # progress through progressr, one step per epoch (silent unless the user enabled handlers)
  prog <- progressr::progressor(steps = n_epochs)
  opts <- list(epochs = n_epochs, batch = batch_size, patience = patience, threads = threads,
               lr = lr, clip = clip, seed = draw_seed(), verbose = as.integer(verbose),
               average = average[1], average2 = average[2],
               progress = function(epoch, train, valid)
                 prog(sprintf("round %d, epoch %d: validation loss %.4f", round, epoch, valid)))
  spec <- spec_with_precision(spec, object)
  res <- with_blas_threads(1L, .Call(C_r_train, spec, params, x_train_std, th_train_std,
                                     x_valid_std, th_valid_std, noise_sd, prepare, opts))
  if (res$status == 1)
    stop("training failed: no finite loss in an epoch; try a smaller `lr`", call. = FALSE)
  # the out-of-distribution check's calibration (R/ood.R), on inputs as noisy as the
  # network saw them (numeric noise is drawn in C per batch: drawn here once for it)
  x_cal <- x_train_std
  if (ncol(x_cal) > 5000L) x_cal <- x_cal[, round(seq(1, ncol(x_cal), length.out = 5000L)), drop = FALSE]
  if (c_noise) x_cal <- x_cal + noise_sd * matrix(stats::rnorm(length(x_cal)), nrow(x_cal))
  ood <- ood_calibrate(spec, res$params, x_cal, x_valid_std, threads)
  object$model <- list(spec = spec, params = res$params, theta_mean = ts_$mean,
                       theta_sd = ts_$sd, x_scale = xs, x_mean = xs$mean, x_sd = xs$sd,
                       n_in = n_in, names = colnames(theta), ood = ood)
  if (!lists) object$x_dim <- attr(x, "raw_dim")
  epochs <- data.frame(round = round, epoch = seq_along(res$train_loss),
                       train_loss = res$train_loss, valid_loss = res$valid_loss, lr = res$lr)
  object$history$epochs <- if (warm) rbind(object$history$epochs, epochs) else epochs
  object$history$best_epoch <- res$best_epoch
  object$history$noise_cut <- (if (warm && !is.null(object$history$noise_cut))
    object$history$noise_cut else 0) + n_cut
  object
}
