#' Create an NPE engine
#'
#' An engine bundles the forward model (simulator, prior, noise model, likelihood) with
#' the networks that will learn its posterior. Fit it with [fit.nbi_engine()], then call
#' [predict.nbi_engine()] for any observation.
#'
#' @param simulator an R function `function(theta)` taking one named parameter vector and
#'   returning one observation (a numeric vector). With `vectorized = TRUE` it takes an
#'   n x d matrix and returns a list of n observations or an n-row matrix. This is the
#'   expensive part of the forward model; its outputs are stored under `workdir`.
#' @param prior an [nbi_prior()] (or a named list of marginals such as [prior_uniform()]).
#' @param featurizer [featurizer_identity()], [featurizer_mlp()] or
#'   [featurizer_resnet_gru()] (sequences: light curves, spectra) or
#'   [featurizer_set_transformer()] (variable-size sets such as multi-band photometry; the
#'   simulator then returns a matrix or data frame with one row per measurement) or
#'   [featurizer_timeseries()] (light curves with their own epochs: one row per epoch,
#'   columns t, value, error).
#' @param flow [flow_maf()].
#' @param noise the cheap part of the forward model, applied afresh to every training batch
#'   in every epoch: `function(x, theta)` taking a matrix of simulations (one per row; a
#'   list of them for set and light-curve featurizers) and the matching parameter matrix,
#'   returning the noisy matrix (it may append columns, e.g. per-object errors); or a number
#'   / numeric vector: independent Gaussian noise with that sd per element (for light
#'   curves, see [featurizer_timeseries()]). See "Augmentation and selection cuts".
#' @param log_likelihood optional `function(x_obs, x_sim, theta, x_err)` returning
#'   log p(x_obs | theta), used for importance weights.
#' @param simulate_for_likelihood whether `log_likelihood` needs `x_sim`, the simulations at
#'   the proposed parameters. `FALSE` when it computes the likelihood from `theta` alone
#'   (e.g. a light-curve model evaluated at the observation's own epochs, when the simulator
#'   draws a random survey cadence): [predict()] then runs no simulations and passes
#'   `x_sim = NULL`.
#' @section Augmentation and selection cuts:
#' A noise function may change the parameters as well as the data: it may return
#' `list(x = , theta = )`, with `theta` the parameter matrix as the augmentation leaves it
#' (a time shift moves `t0`, a time reversal maps the parameters that change sign, a flux
#' fraction drawn on the fly becomes a parameter). The network then learns the posterior of
#' those parameters; the prior must describe them as the augmentation leaves them (a
#' returned `theta` outside the prior's support is an error), since importance weights use
#' it.
#'
#' Selection cuts: a simulator marks a simulation that does not pass the survey's selection
#' by returning [nbi_cut()]; such simulations are counted (`n_cut` of [nbi_simulate()] and
#' of `history$rounds`), kept on disk as cut, and are not failures: any number may be cut,
#' only none passing is an error. A noise function marks cuts by returning
#' `list(x = , theta = , cut = )` with `cut` a logical vector (or, for list observations,
#' [nbi_cut()] elements); each epoch the cut ones are replaced by copies of randomly chosen
#' passing ones of the same draw (counted in `history$noise_cut`). Either way the fitted
#' posterior is that of the **selected population**: the prior times the probability of
#' passing the cuts, which is what a survey's catalogue of detected objects follows.
#' @param vectorized whether `simulator` takes a matrix of parameters.
#' @param workdir folder where simulations are stored as they are produced (default: a new
#'   folder under [tempdir()]).
#' @param precision `"float32"` (the default) or `"float64"`: the precision of the networks'
#'   matrix products in training, sampling and log-densities. Parameters, accumulated
#'   gradients and everything outside the products stay in double precision. `"float32"`
#'   multiplies with nbi's own packed kernel on CPUs with AVX-512, otherwise through the
#'   BLAS's `sgemm` when it has one (checked at install time); it is up
#'   to three times as fast on large networks, with log-densities that agree with
#'   `"float64"` to about 1e-5, and it changed no C2ST of the accuracy benchmark beyond the
#'   spread between two seeds (`bench/RESULTS.md`). Importance weights are computed in
#'   double precision from the exact likelihood either way. Change it on a fitted engine
#'   with `engine$precision <- "float64"`; set the default for a session with
#'   `options(nbi.precision = "float64")`.
#' @return An object of class `nbi_engine`.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16))
#' eng
#' @export
nbi_engine <- function(simulator, prior, featurizer = featurizer_identity(), flow = flow_maf(),
                       noise = NULL, log_likelihood = NULL, vectorized = FALSE,
                       workdir = NULL, precision = getOption("nbi.precision", "float32"),
                       simulate_for_likelihood = TRUE) {
  if (!is.function(simulator))
    stop("`simulator` must be a function(theta) returning one observation", call. = FALSE)
  if (missing(prior)) stop("`prior` is missing: give e.g. nbi_prior(A = prior_uniform(0, 1))",
                           call. = FALSE)
  prior <- as_nbi_prior(prior, arg = "prior")
  if (!inherits(featurizer, "nbi_featurizer"))
    stop("`featurizer` must come from featurizer_identity(), featurizer_mlp(), featurizer_resnet_gru(), featurizer_set_transformer() or featurizer_timeseries()",
         call. = FALSE)
  if (!inherits(flow, "nbi_flow")) stop("`flow` must come from flow_maf()", call. = FALSE)
  if (!is.null(noise) && !is.function(noise) &&
      !(is.numeric(noise) && length(noise) >= 1 && all(is.finite(noise)) && all(noise >= 0)))
    stop("`noise` must be NULL, a function(x, theta), or non-negative noise sd(s)", call. = FALSE)
  if (!is.null(log_likelihood) && !is.function(log_likelihood))
    stop("`log_likelihood` must be NULL or a function(x_obs, x_sim, theta, x_err)", call. = FALSE)
  check_flag(vectorized, "vectorized")
  check_flag(simulate_for_likelihood, "simulate_for_likelihood")
  if (!simulate_for_likelihood && is.null(log_likelihood))
    stop("`simulate_for_likelihood = FALSE` needs a `log_likelihood` that works from theta alone",
         call. = FALSE)
  precision <- check_precision(precision)
  ts_reference_spec(featurizer, prior)  # time parameters must be the prior's
  if (is.null(workdir)) workdir <- tempfile("nbi-")
  if (!is.character(workdir) || length(workdir) != 1 || is.na(workdir) || !nzchar(workdir))
    stop("`workdir` must be a single folder path", call. = FALSE)
  structure(list(simulator = simulator, prior = prior, featurizer = featurizer, flow = flow,
                 noise = noise, log_likelihood = log_likelihood, vectorized = vectorized,
                 workdir = workdir, model = NULL, history = NULL, x_dim = NULL,
                 precision = precision, simulate_for_likelihood = simulate_for_likelihood),
            class = "nbi_engine")
}

#' @export
print.nbi_engine <- function(x, ...) {
  cat("<nbi engine>\n")
  cat(sprintf("  parameters : %s\n", paste(x$prior$names, collapse = ", ")))
  cat("  featurizer : "); print(x$featurizer)
  cat("  flow       : "); print(x$flow)
  cat(sprintf("  noise      : %s\n", if (is.null(x$noise)) "none" else if (is.function(x$noise))
    "function" else paste("Gaussian, sd", paste(format(utils::head(x$noise, 3)), collapse = ", "))))
  cat(sprintf("  precision  : %s matrix products\n", engine_precision(x)))
  if (is.null(x$model)) {
    cat("  not fitted: call fit(engine, n_sims = ...)\n")
  } else {
    h <- x$history
    cat(sprintf("  fitted     : %d simulations, %d parameters in the network, %d epoch(s), best validation loss %.4f\n",
                sum(h$rounds$n_sims), length(x$model$params), nrow(h$epochs),
                min(h$epochs$valid_loss)))
  }
  invisible(x)
}

check_fitted <- function(object, arg = "object") {
  if (!inherits(object, "nbi_engine")) stop(sprintf("`%s` must be an nbi_engine", arg), call. = FALSE)
  if (is.null(object$model))
    stop(sprintf("`%s` is not fitted yet: call fit(%s, n_sims = ...) first", arg, arg), call. = FALSE)
  invisible(object)
}

# precision = c("float64", "float32") with an error naming the argument
check_precision <- function(precision) {
  if (!is.character(precision) || length(precision) != 1 ||
      !precision %in% c("float64", "float32"))
    stop("`precision` must be \"float64\" or \"float32\"", call. = FALSE)
  precision
}

# The C-level spec with the engine's compute precision (engines saved before the option
# existed compute in float64).
spec_with_precision <- function(spec, object) {
  spec$precision <- engine_precision(object)
  spec
}

# The engine's compute precision (engines saved before the option existed: float64).
engine_precision <- function(object) {
  p <- object$precision
  if (is.null(p)) "float64" else check_precision(p)
}

#' Training history of an engine
#'
#' Training and validation loss per epoch (epochs of all rounds in sequence, with dotted
#' lines between rounds). When the rounds recorded effective sample sizes (sequential
#' fits with importance weights), a second panel shows `n_eff` and the sampling efficiency
#' per round.
#'
#' @param x a fitted [nbi_engine()].
#' @param ... further graphical parameters set with [graphics::par()] for the panels.
#' @return `x`, invisibly. The graphical parameters are restored on exit.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' plot(eng)
#' @export
plot.nbi_engine <- function(x, ...) {
  check_fitted(x, "x")
  ep <- x$history$epochs
  rounds <- x$history$rounds
  if (is.null(ep) || !nrow(ep))
    stop("`x` has no training history to plot", call. = FALSE)
  has_neff <- !is.null(rounds) && !is.null(rounds$n_eff) && any(!is.na(rounds$n_eff))

  op <- graphics::par(no.readonly = TRUE)
  on.exit(graphics::par(op))
  graphics::par(mfrow = c(1, if (has_neff) 2 else 1), mar = c(4, 4, 2, if (has_neff) 4 else 1),
                mgp = c(2.4, 0.7, 0))
  extra <- list(...)
  if (length(extra)) graphics::par(extra)

  step <- seq_len(nrow(ep))
  losses <- c(ep$train_loss, ep$valid_loss)
  yl <- if (any(is.finite(losses))) range(losses, finite = TRUE) else c(0, 1)
  cols <- c("steelblue", "darkorange")
  has_valid <- any(is.finite(ep$valid_loss))
  graphics::plot(step, ep$train_loss, type = "l", col = cols[1], lwd = 2, ylim = yl,
                 xlab = "epoch", ylab = "loss (negative log density)", main = "Training")
  if (has_valid) graphics::lines(step, ep$valid_loss, col = cols[2], lwd = 2)
  if (length(step) == 1) {
    graphics::points(step, ep$train_loss, col = cols[1], pch = 19)
    if (has_valid) graphics::points(step, ep$valid_loss, col = cols[2], pch = 19)
  }
  if (!is.null(ep$round) && length(unique(ep$round)) > 1) {
    graphics::abline(v = which(diff(ep$round) != 0) + 0.5, lty = 3, col = "grey40")
  }
  graphics::legend("topright", legend = c("training", "validation")[c(TRUE, has_valid)],
                   col = cols[c(TRUE, has_valid)], lwd = 2, bty = "n")

  if (has_neff) {
    r <- if (is.null(rounds$round)) seq_len(nrow(rounds)) else rounds$round
    ne <- rounds$n_eff
    ef <- rounds$efficiency
    graphics::plot(r, ne, type = "b", pch = 19, col = cols[1], lwd = 2, xaxt = "n",
                   ylim = c(0, max(ne, na.rm = TRUE) * 1.05), xlab = "round",
                   ylab = "effective sample size", main = "Importance sampling")
    graphics::axis(1, at = r)
    if (any(!is.na(ef))) {
      graphics::par(new = TRUE)
      graphics::plot(r, ef, type = "b", pch = 17, col = cols[2], lwd = 2, lty = 2, axes = FALSE,
                     xlab = "", ylab = "", ylim = c(0, max(1, ef, na.rm = TRUE)))
      graphics::axis(4)
      graphics::mtext("efficiency", side = 4, line = 2.4)
      graphics::legend("topleft", legend = c("n_eff", "efficiency"), col = cols, pch = c(19, 17),
                       lty = c(1, 2), lwd = 2, bty = "n")
    }
  }
  invisible(x)
}
