#' Train an engine on simulations
#'
#' `n_rounds = 1` trains amortised NPE on simulations from the prior: afterwards
#' [predict()] returns a posterior for any observation. The network is trained in C with
#' Adam, a cosine learning-rate decay over the epochs, minibatches reshuffled each epoch,
#' gradient-norm clipping and early stopping on a validation split (the best parameters
#' are restored). Parameters and observations are standardised with the training split's
#' means and sds, which are stored with the model.
#'
#' @param object an [nbi_engine()].
#' @param n_sims number of simulations per round (>= 2), unless `theta` and `x` are given.
#' @param n_rounds number of rounds; only 1 (amortised) is available in this version.
#' @param n_epochs maximum number of epochs.
#' @param x_obs,x_err the observation and its errors, for sequential rounds.
#' @param theta,x a precomputed training set instead of simulating: an n x d parameter
#'   matrix and an n x p matrix of simulator outputs (one per row).
#' @param batch_size minibatch size.
#' @param lr initial learning rate.
#' @param valid_fraction fraction of simulations held out for early stopping.
#' @param patience epochs without validation improvement before stopping.
#' @param n_reuse,neff_target settings of sequential rounds.
#' @param threads threads for the C core (default `getOption("nbi.threads", 2)`).
#' @param seed optional seed: the whole fit (simulations, split, noise, training) is
#'   reproducible from it. Without it, [set.seed()] before `fit()` does the same.
#' @param verbose print the loss per epoch.
#' @param ... `clip` (gradient-norm bound, default 5).
#' @return The fitted engine, with `history` (`rounds`: n_sims, n_eff, efficiency, seconds
#'   per round; `epochs`: train and validation loss and learning rate per epoch).
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' eng$history$rounds
#' @importFrom generics fit
#' @export
fit.nbi_engine <- function(object, n_sims = NULL, n_rounds = 1, n_epochs = 100, x_obs = NULL,
                           x_err = NULL, theta = NULL, x = NULL, batch_size = 128, lr = 1e-3,
                           valid_fraction = 0.1, patience = 20, n_reuse = -1,
                           neff_target = NULL, threads = NULL, seed = NULL,
                           verbose = interactive(), ...) {
  if (!inherits(object, "nbi_engine")) stop("`object` must be an nbi_engine", call. = FALSE)
  check_count(n_rounds, "n_rounds", min = 1)
  if (n_rounds > 1)
    stop("`n_rounds` > 1 (sequential SNPE-IS) is not available in this version; use n_rounds = 1",
         call. = FALSE)
  check_count(n_epochs, "n_epochs", min = 1)
  check_count(batch_size, "batch_size", min = 1)
  check_number(lr, "lr", lower = 0, upper = 1, inclusive = FALSE)
  check_number(valid_fraction, "valid_fraction", lower = 0, upper = 0.9)
  check_count(patience, "patience", min = 1)
  check_flag(verbose, "verbose")
  threads <- default_threads(threads)
  dots <- list(...)
  clip <- if (is.null(dots$clip)) 5 else dots$clip
  check_number(clip, "clip", lower = 0)
  if (xor(is.null(theta), is.null(x)))
    stop("give both `theta` and `x` (a precomputed training set), or neither", call. = FALSE)
  if (is.null(theta)) {
    if (is.null(n_sims)) stop("`n_sims` is missing: how many simulations to train on?", call. = FALSE)
    check_count(n_sims, "n_sims", min = 2)
  }
  run <- function() {
    t0 <- proc.time()[["elapsed"]]
    data <- if (is.null(theta)) {
      nbi_simulate(object, n_sims)
    } else {
      list(theta = check_theta(object$prior, theta, "theta"), x = x)
    }
    xm <- as_training_x(data$x, nrow(data$theta))
    train_engine(object, data$theta, xm, n_epochs, batch_size, lr, valid_fraction, patience,
                 clip, threads, verbose, round = 1L, t0 = t0)
  }
  if (is.null(seed)) run() else with_seed(seed, run())
}

# Simulator outputs as an n x p numeric matrix (vector observations).
as_training_x <- function(x, n) {
  if (is.data.frame(x)) x <- as.matrix(x)
  if (is.list(x)) {
    lens <- lengths(x)
    if (!all(vapply(x, is.numeric, logical(1))) || length(unique(lens)) != 1)
      stop("`x`: observations must be numeric vectors of one length for this featurizer",
           call. = FALSE)
    x <- matrix(unlist(x, use.names = FALSE), nrow = length(x), byrow = TRUE)
  }
  if (is.numeric(x) && is.null(dim(x))) x <- matrix(x, ncol = 1)
  if (!is.numeric(x) || !is.matrix(x)) stop("`x` must be a numeric matrix, one simulation per row",
                                            call. = FALSE)
  if (nrow(x) != n) stop(sprintf("`x` has %d rows but `theta` has %d", nrow(x), n), call. = FALSE)
  if (n < 2) stop("at least 2 simulations are needed to train", call. = FALSE)
  if (!all(is.finite(x))) stop("`x` has NA or non-finite values", call. = FALSE)
  storage.mode(x) <- "double"
  x
}

# theta as an n x d matrix in the prior's column order.
check_theta <- function(prior, theta, arg) {
  if (is.data.frame(theta)) theta <- as.matrix(theta)
  if (is.numeric(theta) && is.null(dim(theta))) {
    if (length(theta) %% prior$dim != 0)
      stop(sprintf("`%s` must have %d values per parameter set", arg, prior$dim), call. = FALSE)
    theta <- matrix(theta, ncol = prior$dim, byrow = TRUE, dimnames = list(NULL, names(theta)[seq_len(prior$dim)]))
  }
  if (!is.numeric(theta) || ncol(theta) != prior$dim)
    stop(sprintf("`%s` must be a matrix with %d columns (%s)", arg, prior$dim,
                 paste(prior$names, collapse = ", ")), call. = FALSE)
  if (!is.null(colnames(theta)) && all(prior$names %in% colnames(theta)))
    theta <- theta[, prior$names, drop = FALSE]
  colnames(theta) <- prior$names
  if (!all(is.finite(theta))) stop(sprintf("`%s` has NA or non-finite values", arg), call. = FALSE)
  storage.mode(theta) <- "double"
  theta
}

# The engine's noise model applied to a batch of simulations (one fresh draw).
apply_noise <- function(noise, x, theta) {
  if (is.null(noise)) return(x)
  if (is.numeric(noise)) {
    sd <- if (length(noise) == 1) noise else rep_len(noise, ncol(x))
    return(x + matrix(stats::rnorm(length(x)), nrow(x)) * rep(sd, each = nrow(x)))
  }
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

column_scale <- function(m) {
  mu <- colMeans(m)
  s <- sqrt(pmax(colMeans(m^2) - mu^2, 0) * nrow(m) / max(1, nrow(m) - 1))
  s[!is.finite(s) | s < 1e-12 * pmax(1, abs(mu))] <- 1  # constant columns are only centred
  list(mean = mu, sd = s)
}

standardise <- function(m, sc) t((t(m) - sc$mean) / sc$sd)

train_engine <- function(object, theta, x, n_epochs, batch_size, lr, valid_fraction, patience,
                         clip, threads, verbose, round, t0) {
  n <- nrow(theta)
  n_valid <- if (valid_fraction > 0) max(1L, floor(valid_fraction * n)) else 0L
  if (n - n_valid < 1) stop("too few simulations for the validation split", call. = FALSE)
  perm <- sample.int(n)
  iv <- perm[seq_len(n_valid)]
  it <- perm[seq.int(n_valid + 1L, n)]
  noise <- object$noise
  x_train_raw <- x[it, , drop = FALSE]
  th_train <- theta[it, , drop = FALSE]
  xn_train <- apply_noise(noise, x_train_raw, th_train)
  xs <- column_scale(xn_train)
  ts <- column_scale(th_train)
  n_in <- ncol(xn_train)
  spec <- model_spec(object$featurizer, object$flow, n_in = n_in, d = ncol(theta))
  params <- model_init(spec, object$flow$seed)
  noise_sd <- NULL
  prepare <- NULL
  x_train_std <- t(standardise(if (is.numeric(noise)) x_train_raw else xn_train, xs))
  if (is.numeric(noise)) noise_sd <- rep_len(noise, n_in) / xs$sd
  if (is.function(noise))
    prepare <- function(epoch) t(standardise(apply_noise(noise, x_train_raw, th_train), xs))
  x_valid_std <- th_valid_std <- NULL
  if (n_valid > 0) {
    x_valid_std <- t(standardise(apply_noise(noise, x[iv, , drop = FALSE],
                                             theta[iv, , drop = FALSE]), xs))
    th_valid_std <- t(standardise(theta[iv, , drop = FALSE], ts))
  }
  opts <- c(n_epochs, batch_size, patience, threads, lr, clip, draw_seed(), verbose)
  adam <- list(numeric(length(params)), numeric(length(params)), 0L)
  res <- .Call(C_r_train, spec, params, adam, x_train_std, t(standardise(th_train, ts)),
               x_valid_std, th_valid_std, noise_sd, prepare, as.numeric(opts))
  if (res$status == 1)
    stop("training failed: no finite loss in an epoch; try a smaller `lr`", call. = FALSE)
  object$model <- list(spec = spec, params = res$params, theta_mean = ts$mean,
                       theta_sd = ts$sd, x_mean = xs$mean, x_sd = xs$sd, n_in = n_in,
                       names = colnames(theta))
  object$x_dim <- ncol(x)
  object$data <- list(theta = theta, x = x)
  object$history <- list(
    rounds = data.frame(round = round, n_sims = n, n_eff = NA_real_, efficiency = NA_real_,
                        seconds = proc.time()[["elapsed"]] - t0, best_epoch = res$best_epoch),
    epochs = data.frame(round = round, epoch = seq_along(res$train_loss),
                        train_loss = res$train_loss, valid_loss = res$valid_loss, lr = res$lr))
  object
}
