#' Train an engine on simulations
#'
#' `n_rounds = 1` trains amortised NPE on simulations from the prior: afterwards
#' [predict()] returns a posterior for any observation. The network is trained in C with
#' Adam, a cosine learning-rate decay over the epochs, minibatches reshuffled each epoch,
#' gradient-norm clipping and early stopping on a validation split. What is validated and
#' kept is an exponential moving average of the Adam iterates (Polyak averaging), which
#' removes most of the minibatch noise from the fitted network; the best parameters are
#' restored. Parameters and observations are standardised with the training split's
#' means and sds, which are stored with the model.
#'
#' @param object an [nbi_engine()].
#' @param n_sims number of simulations per round (>= 2), unless `theta` and `x` are given.
#' @param n_rounds number of rounds. 1: amortised NPE on prior simulations. More, with
#'   `x_obs`: SNPE-IS (seed 000, Algorithm 1): each round proposes from the current
#'   surrogate posterior at `x_obs`, simulates, computes importance weights and n_eff from
#'   those same simulations, and trains on the kept rounds; it stops (reverting to the best
#'   surrogate) when a surrogate's n_eff drops below the previous surrogate's, or reaches
#'   `neff_target`. `history$rounds$n_eff` is the n_eff of the proposal used in each round
#'   (the prior in round 1). Proposals are tempered (see below). The last round only
#'   evaluates the current surrogate, so the returned surrogate's n_eff is always known.
#' @param n_epochs maximum number of epochs.
#' @param x_obs,x_err the observation and its errors (for the default Gaussian
#'   likelihood), for sequential rounds.
#' @param theta,x a precomputed training set instead of simulating: an n x d parameter
#'   matrix and an n x p matrix of simulator outputs (one per row).
#' @param batch_size minibatch size.
#' @param lr initial learning rate.
#' @param valid_fraction fraction of simulations held out for early stopping.
#' @param patience epochs without validation improvement before stopping.
#' @param n_reuse number of most recent rounds to train on (-1: all).
#' @param neff_target stop the rounds once a proposal reaches this n_eff.
#' @param threads OpenMP threads of the C core (default `getOption("nbi.threads", 1)`:
#'   on 2 cores, OpenMP threads that spin next to a threaded OpenBLAS cost more than they
#'   give; see bench/throughput.R).
#' @param seed optional seed: the whole fit (simulations, split, noise, training) is
#'   reproducible from it. Without it, [set.seed()] before `fit()` does the same.
#' @param verbose print the loss per epoch.
#' @param ... `clip` (gradient-norm bound, default 5); `average` (caps of the decay of
#'   the iterate averages, default `c(0.999, 0.99)`: windows of about 1,000 and 100 steps,
#'   both validated every epoch, the one with the lower validation loss competing for the
#'   kept parameters; one number keeps one average; 0 validates and keeps the raw
#'   iterates); `rescale` (later SNPE rounds
#'   re-standardise from their own data, default `TRUE`); `temper` (see below).
#' @section Tempered proposals:
#' Trained with the plain NLL on proposals from the previous round's surrogate q, the next
#' surrogate learns q x likelihood instead of prior x likelihood: once q is close to the
#' posterior, the next one is too narrow (about posterior squared), and importance weights
#' with a proposal narrower than the target have a heavy tail, so n_eff collapses (seed
#' 000 sees this as the drop that ends its rounds). SNPE-IS therefore proposes from the
#' surrogate with every base mixture component's sd multiplied by `temper` (default
#' `sqrt(2)` when `n_rounds > 1`). For a Gaussian posterior and a flat prior this makes the
#' loop's fixed point exact: a surrogate of variance s2 proposes with variance 2 s2, and
#' training on those proposals gives 1 / (1 / (2 s2) + 1 / v) = s2 for a likelihood of
#' variance v exactly when 2 s2 = v, so the tempered proposal is the posterior. Weights
#' stay exact for any `temper` (the tempered density is computed exactly), and
#' [predict()] importance-samples from the same tempered proposal. `temper = 1` gives the
#' Python original's behaviour. On the sine problem of seed 000 (2,560 simulations per
#' round, 5 rounds, 6 noise realisations) `sqrt(2)` raised the final efficiency from a
#' mean of 19% (3-42%) to 55% (33-83%).
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
  average <- if (is.null(dots$average)) c(0.999, 0.99) else dots$average
  if (!is.numeric(average) || !length(average) %in% 1:2 || anyNA(average) ||
      any(average < 0 | average > 0.9999999))
    stop("`average` must be one or two numbers in [0, 0.9999999] (0: the raw iterates)",
         call. = FALSE)
  average <- c(average, 0)[1:2]
  if (average[1] == 0) average <- rev(average)
  if (xor(is.null(theta), is.null(x)))
    stop("give both `theta` and `x` (a precomputed training set), or neither", call. = FALSE)
  if (is.null(theta)) {
    if (is.null(n_sims)) stop("`n_sims` is missing: how many simulations to train on?", call. = FALSE)
    check_count(n_sims, "n_sims", min = 2)
  }
  sequential <- n_rounds > 1
  if (sequential) {
    if (is.data.frame(x_obs)) x_obs <- as.matrix(x_obs)
    if (is.null(x_obs) || !is.numeric(x_obs) || !all(is.finite(x_obs)))
      stop("`x_obs` (one numeric observation) is needed when `n_rounds` > 1", call. = FALSE)
    if (!has_likelihood(object, x_err))
      stop("`n_rounds` > 1 needs a likelihood: give `x_err`, numeric `noise`, or `log_likelihood` to the engine",
           call. = FALSE)
    default_x_err(object, x_err)
    check_count(n_reuse, "n_reuse", min = -1)
    if (n_reuse == 0) stop("`n_reuse` must be -1 (all rounds) or a positive number of rounds",
                           call. = FALSE)
    if (!is.null(neff_target)) check_number(neff_target, "neff_target", lower = 0)
  }
  rescale <- if (is.null(dots$rescale)) TRUE else dots$rescale
  temper <- if (!is.null(dots$temper)) dots$temper else if (sequential) sqrt(2) else NULL
  if (!is.null(temper)) {
    check_number(temper, "temper", lower = 1, upper = 100)
    object$temper <- temper
  }
  train <- function(obj, theta, x, round, t0, warm)
    train_engine(obj, theta, x, n_epochs, batch_size, lr, valid_fraction, patience, clip,
                 average, threads, verbose, round = round, t0 = t0, warm = warm, rescale = rescale || !warm)
  run <- function() {
    t0 <- proc.time()[["elapsed"]]
    data <- if (is.null(theta)) {
      nbi_simulate(object, n_sims)
    } else {
      list(theta = check_theta(object$prior, theta, "theta"), x = x)
    }
    xm <- as_training_x(data$x, nrow(data$theta), object$featurizer)
    if (!sequential) {
      object <- train(object, data$theta, xm, 1L, t0, FALSE)
      object$history$rounds <- round_row(1L, n_obs(xm), NA_real_, t0, object)
      return(object)
    }
    snpe_is(object, data$theta, xm, n_sims = n_obs(xm), n_rounds, x_obs, x_err, n_reuse,
            neff_target, threads, verbose, train, t0)
  }
  if (is.null(seed)) run() else with_seed(seed, run())
}

round_row <- function(round, n_sims, n_eff, t0, object) {
  data.frame(round = round, n_sims = n_sims, n_eff = n_eff, efficiency = n_eff / n_sims,
             seconds = proc.time()[["elapsed"]] - t0,
             best_epoch = if (is.null(object$history$best_epoch)) NA_integer_
                          else object$history$best_epoch)
}

# SNPE-IS (seed 000, Algorithm 1). Round i proposes from the surrogate of round i - 1 (the
# prior for i = 1), simulates, weighs those simulations against the exact likelihood (no
# extra simulator calls) and records n_eff; it stops, reverting to the best surrogate, when
# n_eff drops, and otherwise trains on the kept rounds with the plain NLL, warm-started.
snpe_is <- function(object, theta1, x1, n_sims, n_rounds, x_obs, x_err, n_reuse, neff_target,
                    threads, verbose, train, t0) {
  x_obs <- if (is_set_featurizer(object$featurizer))
    check_set(x_obs, object$featurizer, "x_obs") else flatten_obs(x_obs)
  pool <- list()
  rounds <- NULL
  best <- NULL
  prev_neff <- 0
  theta_r <- theta1
  x_r <- x1
  log_q <- log_prior(object$prior, theta1)  # round 1 proposes from the prior: w ∝ likelihood
  acc <- 1
  for (r in seq_len(n_rounds)) {
    if (r > 1) {
      t0 <- proc.time()[["elapsed"]]
      draws <- sample_in_support(object, list(x_obs), n_sims, threads, proposal_temper(object))
      if (draws$none[1]) stop_no_support(draws$none)
      sims <- nbi_simulate(object, theta = draws$theta[[1]])
      theta_r <- sims$theta
      x_r <- as_training_x(sims$x, nrow(theta_r), object$featurizer)
      log_q <- draws$log_q[[1]][sims$kept]
      acc <- draws$acceptance[1]
    }
    ll <- eval_log_lik(object, x_obs, x_r, theta_r, x_err)
    st <- suppressWarnings(importance_stats(ll, log_prior(object$prior, theta_r), log_q - log(acc)))
    if (verbose) message(sprintf("round %d: %d simulations, n_eff %.1f (efficiency %.1f%%)", r,
                                 nrow(theta_r), st$n_eff, 100 * st$efficiency))
    # the prior (round 1) has no network to revert to: the first surrogate always gets a
    # second round; from round 3 on, a drop reverts to the best surrogate so far
    if (r > 2 && st$n_eff < prev_neff) {
      rounds <- rbind(rounds, round_row(r, nrow(theta_r), st$n_eff, t0, object))
      if (verbose) message("n_eff dropped: reverting to the surrogate of round ", r - 1)
      object <- best
      break
    }
    prev_neff <- st$n_eff
    if (r > 1) best <- object
    pool[[length(pool) + 1]] <- list(theta = theta_r, x = x_r)
    if (n_reuse > 0 && length(pool) > n_reuse) pool <- utils::tail(pool, n_reuse)
    done <- !is.null(neff_target) && st$n_eff >= neff_target && r > 1
    # the last round only evaluates: a surrogate trained on it could not be checked
    if (!done && r < n_rounds) {
      all_theta <- do.call(rbind, lapply(pool, `[[`, "theta"))
      all_x <- pool_x(lapply(pool, `[[`, "x"))
      object <- train(object, all_theta, all_x, r, t0, warm = r > 1)
    }
    rounds <- rbind(rounds, round_row(r, nrow(theta_r), st$n_eff, t0, object))
    if (done) break
  }
  object$history$rounds <- rounds
  object
}

# Simulator outputs as an n x p numeric matrix (vector observations).
as_training_x <- function(x, n, featurizer = NULL) {
  if (n < 2) stop("at least 2 simulations are needed to train", call. = FALSE)
  if (is_set_featurizer(featurizer)) {
    if (!is.list(x) || is.data.frame(x))
      stop("`x`: set observations must come as a list of matrices", call. = FALSE)
    if (length(x) != n) stop(sprintf("`x` has %d sets but `theta` has %d rows", length(x), n),
                             call. = FALSE)
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
  if (is.list(x)) return(apply_set_noise(noise, x, theta))
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

# Sets: a number (or one per value column) adds Gaussian noise to the values; a closure
# takes and returns the list of set matrices.
apply_set_noise <- function(noise, x, theta) {
  if (is.numeric(noise))
    return(lapply(x, function(s) {
      sd <- rep_len(noise, ncol(s) - 1L)
      s[, -1] <- s[, -1] + matrix(stats::rnorm(nrow(s) * (ncol(s) - 1L)), nrow(s)) *
        rep(sd, each = nrow(s))
      s
    }))
  out <- noise(x, theta)
  if (!is.list(out) || length(out) != length(x))
    stop(sprintf("`noise` must return a list of %d sets", length(x)), call. = FALSE)
  out
}

column_scale <- function(m) {
  mu <- colMeans(m)
  s <- sqrt(pmax(colMeans(m^2) - mu^2, 0) * nrow(m) / max(1, nrow(m) - 1))
  s[!is.finite(s) | s < 1e-12 * pmax(1, abs(mu))] <- 1  # constant columns are only centred
  list(mean = mu, sd = s)
}

standardise <- function(m, sc) t((t(m) - sc$mean) / sc$sd)

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
  opts <- c(n_epochs, batch_size, patience, threads, lr, clip, draw_seed(), verbose, average[1],
            average[2])
  adam <- list(numeric(length(params)), numeric(length(params)), 0L)
  spec <- spec_with_precision(spec, object)
  res <- with_blas_threads(blas_threads(spec, threads), .Call(C_r_train, spec, params, adam, x_train_std,
                                          t(standardise(th_train, ts)), x_valid_std,
                                          th_valid_std, noise_sd, prepare, as.numeric(opts)))
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
