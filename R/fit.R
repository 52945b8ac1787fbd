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
#' @param clip bound of the gradient's norm (0: no clipping).
#' @param average caps of the decay of the iterate averages: the default `c(0.999, 0.99)`
#'   keeps windows of about 1,000 and 100 steps, both validated every epoch, the one with
#'   the lower validation loss competing for the kept parameters; one number keeps one
#'   average; 0 validates and keeps the raw iterates.
#' @param rescale whether later SNPE-IS rounds re-standardise parameters and observations
#'   from their own data.
#' @param temper the proposal's widening in SNPE-IS (see below; default `sqrt(2)` when
#'   `n_rounds > 1`, none otherwise).
#' @param ... must be empty: an unknown argument is an error.
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
#'   per round, the simulations dropped as failed (`n_failed`) or cut by the selection
#'   (`n_cut`, see [nbi_cut()]), and `kept`: TRUE for the round whose proposal is the
#'   returned surrogate, the last one unless n_eff dropped and the fit reverted; `epochs`:
#'   train and validation loss and learning rate per epoch; `noise_cut`: the simulations a
#'   noise function cut, summed over epochs).
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
                           verbose = interactive(), clip = 5, average = c(0.999, 0.99),
                           rescale = TRUE, temper = NULL, ...) {
  check_dots(list(...), "fit")
  if (!inherits(object, "nbi_engine")) stop("`object` must be an nbi_engine", call. = FALSE)
  check_count(n_rounds, "n_rounds", min = 1)
  check_count(n_epochs, "n_epochs", min = 1)
  check_count(batch_size, "batch_size", min = 1)
  check_number(lr, "lr", lower = 0, upper = 1, inclusive = FALSE)
  check_number(valid_fraction, "valid_fraction", lower = 0, upper = 0.9)
  check_count(patience, "patience", min = 1)
  check_flag(verbose, "verbose")
  threads <- default_threads(threads)
  check_number(clip, "clip", lower = 0)
  check_flag(rescale, "rescale")
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
  if (is.null(temper) && sequential) temper <- sqrt(2)
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
      object$history$rounds <- cbind(round_row(1L, n_obs(xm), NA_real_, t0, object,
                                               data$n_failed, data$n_cut), kept = TRUE)
      return(object)
    }
    snpe_is(object, data$theta, xm, n_sims = n_obs(xm), n_rounds, x_obs, x_err, n_reuse,
            neff_target, threads, verbose, train, t0)
  }
  if (is.null(seed)) run() else with_seed(seed, run())
}

# n_sims: the simulations trained on; n_failed, n_cut: those dropped as failed or cut by the
# selection (NA where not counted: SNPE rounds; NULL: none, a training set given as data)
round_row <- function(round, n_sims, n_eff, t0, object, n_failed = NA, n_cut = NA) {
  data.frame(round = round, n_sims = n_sims, n_eff = n_eff, efficiency = n_eff / n_sims,
             seconds = proc.time()[["elapsed"]] - t0,
             best_epoch = if (is.null(object$history$best_epoch)) NA_integer_
                          else object$history$best_epoch,
             n_failed = if (is.null(n_failed)) 0L else as.integer(n_failed),
             n_cut = if (is.null(n_cut)) 0L else as.integer(n_cut))
}
