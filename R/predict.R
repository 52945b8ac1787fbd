#' Posterior draws for an observation
#'
#' Draws from the fitted surrogate posterior q(theta | x_obs); draws outside the prior's
#' support are redrawn. When a likelihood is available (`x_err`, a numeric `noise`, or the
#' engine's `log_likelihood`), the simulator is run at the draws (in parallel through the
#' user's [future::plan()]) and importance weights
#' w ∝ p(x_obs | theta) p(theta) / q(theta | x_obs) make the result asymptotically exact;
#' `n_eff`, `efficiency`, `log_evidence` (with its standard error) and `pareto_k` say how
#' far to trust it (seed 000, Algorithm 1). `x_obs` may hold many observations (a list, or a matrix with one
#' observation per row): they are sampled together in batched C calls and the result is an
#' `nbi_posterior_list`.
#'
#' @param object a fitted [nbi_engine()].
#' @param x_obs the observation, in the layout the network sees (the simulator's output,
#'   or the noise function's output when it appends columns).
#' @param x_err observational errors for the default Gaussian likelihood (one per element
#'   of the observation, or one for all).
#' @param n_samples number of draws per observation.
#' @param importance `NULL` (weigh when a likelihood is available), `TRUE` or `FALSE`.
#' @param seed optional seed for reproducible draws (or use [set.seed()]).
#' @param threads threads for the C core.
#' @param ... `temper`: the importance-sampling proposal is the surrogate with its base
#'   sds multiplied by this (>= 1; default: the engine's `temper`, set by an SNPE-IS fit,
#'   else 1). A wider proposal guards against an overconfident surrogate; the weights are
#'   exact either way. Unweighted draws (`importance = FALSE`) always come from the
#'   surrogate itself.
#'
#'   `adapt`: rounds of adaptive importance sampling (population Monte Carlo; default 0).
#'   When the surrogate is a poor proposal (low `efficiency`, Pareto k > 0.7, typically
#'   after training on few simulations), each round fits a mixture of 8 Student-t
#'   components (5 degrees of freedom) to all weighted draws so far and draws `n_samples`
#'   new ones from the defensive mixture 0.1 q + 0.9 g, weighed against that mixture's
#'   exact density: the weights stay exact, only their variance changes. The round with
#'   the largest n_eff is returned (`post$adapt` lists n_eff per round, round 0 being the
#'   surrogate's). Each round costs `n_samples` more simulations; the mixture is fitted in
#'   R, one observation at a time.
#' @return An `nbi_posterior` (or `nbi_posterior_list`).
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' post <- predict(eng, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2)
#' post
#' # a surrogate trained on few simulations, refined by two rounds of adaptive IS
#' noisy <- nbi_engine(function(theta) rep(theta[["mu"]], 3), nbi_prior(mu = prior_normal(0, 1)),
#'                     flow = flow_maf(blocks = 2, hidden = 16, mixture = 2), noise = 0.5)
#' noisy <- fit(noisy, n_sims = 200, n_epochs = 3, seed = 1)
#' refined <- predict(noisy, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2, adapt = 2)
#' refined$adapt$n_eff
#' @export
predict.nbi_engine <- function(object, x_obs, x_err = NULL, n_samples = 2000,
                               importance = NULL, seed = NULL, threads = NULL, ...) {
  check_fitted(object)
  check_count(n_samples, "n_samples", min = 1)
  if (!is.null(importance)) check_flag(importance, "importance")
  threads <- default_threads(threads)
  obs <- obs_items(object, x_obs, "x_obs")
  weigh <- if (is.null(importance)) has_likelihood(object, x_err) else importance
  if (weigh && !has_likelihood(object, x_err))
    stop("`importance = TRUE` needs a likelihood: give `x_err`, numeric `noise`, or `log_likelihood` to the engine",
         call. = FALSE)
  if (weigh) default_x_err(object, x_err)  # validates x_err before any simulation
  temper <- list(...)$temper
  if (is.null(temper)) temper <- proposal_temper(object)
  check_number(temper, "temper", lower = 1, upper = 100)
  if (!weigh) temper <- 1
  adapt <- list(...)$adapt
  if (is.null(adapt)) adapt <- 0
  check_count(adapt, "adapt", min = 0, max = 100)
  run <- function() {
    draws <- sample_in_support(object, obs$items, n_samples, threads, temper = temper)
    # one simulation run for the proposals of every observation (one future_lapply, not
    # one per observation), split back afterwards
    sims <- if (weigh) split_sims(nbi_simulate(object, theta = do.call(rbind, draws$theta)),
                                  vapply(draws$theta, nrow, integer(1)))
    posts <- lapply(seq_along(obs$items), function(i) {
      if (weigh) {
        weigh_i <- function() weigh_proposals(object, obs$items[[i]], x_err, draws$theta[[i]],
                                              draws$log_q[[i]], draws$acceptance[i],
                                              draws$drawn[i], sims[[i]])
        # when adapting, only the returned round's weights are worth a warning
        p <- if (adapt > 0) suppressWarnings(weigh_i()) else weigh_i()
        p$temper <- temper
        if (adapt > 0) {
          p <- adapt_posterior(object, obs$items[[i]], x_err, p, n_samples, adapt, threads)
          warn_weights(all(p$log_weights == -Inf), p$pareto_k)
        }
        p
      }
      else new_posterior(draws$theta[[i]], draws$log_q[[i]], obs$items[[i]], draws$acceptance[i])
    })
    if (obs$single) posts[[1]] else structure(posts, class = "nbi_posterior_list")
  }
  if (is.null(seed)) run() else with_seed(seed, run())
}

#' Log-density of the surrogate posterior
#'
#' log q(theta | x_obs) of the fitted flow, in the parameters' own units (the
#' standardisation Jacobian included).
#' @param object a fitted [nbi_engine()].
#' @param theta an n x d matrix (or one parameter vector).
#' @param x_obs one observation, or a matrix of n observations (one per row of `theta`).
#' @param threads threads for the C core.
#' @return A numeric vector of n log-densities.
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' nbi_log_prob(eng, matrix(c(0, 0.5, 1)), c(0.5, 0.4, 0.7))
#' @export
nbi_log_prob <- function(object, theta, x_obs, threads = NULL) {
  check_fitted(object)
  threads <- default_threads(threads)
  theta <- check_theta(object$prior, theta, "theta")
  obs <- obs_items(object, x_obs, "x_obs")
  if (length(obs$items) != 1 && length(obs$items) != nrow(theta))
    stop("`x_obs` must be one observation or one per row of `theta`", call. = FALSE)
  m <- object$model
  z <- t(standardise(theta, list(mean = m$theta_mean, sd = m$theta_sd)))
  enc <- encode_obs(object, obs$items)
  with_blas_threads(blas_threads(enc$spec, threads), .Call(C_r_model_log_prob, enc$spec, m$params, enc$x, z, 1, threads)) -
    sum(log(m$theta_sd))
}

# x_obs as a matrix with one observation per row, and whether it was a single one.
check_observation <- function(object, x_obs, arg) {
  p <- object$model$n_in
  bad <- function(got) stop(sprintf("`%s` must be a numeric vector of length %d (one observation), or a matrix / list of such observations; got %s",
                                    arg, p, got), call. = FALSE)
  if (missing(x_obs) || is.null(x_obs)) bad("nothing")
  single <- FALSE
  if (is.data.frame(x_obs)) x_obs <- as.matrix(x_obs)
  ch <- if (object$featurizer$type == "resnet_gru") object$featurizer$channels else 1L
  if (is.matrix(x_obs) && ch > 1 && ncol(x_obs) == ch && length(x_obs) == p)
    x_obs <- flatten_obs(x_obs)  # one length x channels sequence
  if (is.list(x_obs)) {
    x_obs <- lapply(x_obs, flatten_obs)
    if (!all(vapply(x_obs, function(v) is.numeric(v) && length(v) == p, logical(1))))
      bad("a list with elements of other lengths")
    x <- matrix(unlist(x_obs, use.names = FALSE), ncol = p, byrow = TRUE)
  } else if (is.numeric(x_obs) && is.null(dim(x_obs))) {
    if (length(x_obs) != p) bad(sprintf("length %d", length(x_obs)))
    x <- matrix(x_obs, nrow = 1)
    single <- TRUE
  } else if (is.numeric(x_obs) && is.matrix(x_obs)) {
    if (ncol(x_obs) != p) bad(sprintf("a matrix with %d columns", ncol(x_obs)))
    x <- x_obs
  } else bad(class(x_obs)[1])
  if (!all(is.finite(x))) stop(sprintf("`%s` has NA or non-finite values", arg), call. = FALSE)
  storage.mode(x) <- "double"
  list(x = x, single = single)
}

# nbi_simulate() output for stacked parameter sets of several observations (`sizes` rows
# each), as one list(x, kept) per observation with rows numbered within it.
split_sims <- function(sims, sizes) {
  end <- cumsum(sizes)
  owner <- findInterval(sims$kept - 1, end) + 1  # the observation of each kept row
  lapply(seq_along(sizes), function(i) {
    sel <- which(owner == i)
    x <- if (is.matrix(sims$x)) sims$x[sel, , drop = FALSE] else sims$x[sel]
    list(x = x, kept = sims$kept[sel] - (end[i] - sizes[i]))
  })
}

# Draws from q(theta | x) for each observation in `items`, redrawing those outside the
# prior's support.
sample_in_support <- function(object, items, n, threads, temper = 1) {
  m <- object$model
  enc <- encode_obs(object, items)
  xs <- enc$x
  n_obs <- length(items)
  theta <- vector("list", n_obs)
  log_q <- vector("list", n_obs)
  drawn <- numeric(n_obs)
  inside <- numeric(n_obs)  # draws inside the support, surplus ones included
  need <- rep(n, n_obs)
  for (attempt in 1:20) {
    todo <- which(need > 0)
    if (!length(todo)) break
    acc <- if (attempt == 1) 1 else pmax(0.05, inside[todo] / pmax(1, drawn[todo]))
    want <- if (attempt == 1) rep(n, length(todo)) else ceiling(1.2 * need[todo] / acc) + 8
    # one C call per group of observations needing about the same number of draws (powers
    # of 2), so one observation with a low acceptance rate does not make all draw as many
    group <- if (attempt == 1) rep(0, length(todo)) else ceiling(log2(want))
    for (g in sort(unique(group))) {
      sel <- todo[group == g]
      k <- as.integer(min(1e7 / length(sel), max(want[group == g])))
      z <- with_blas_threads(blas_threads(enc$spec, threads), .Call(C_r_model_sample, enc$spec, m$params,
                                            xs[, sel, drop = FALSE], k, draw_seed(),
                                            as.numeric(temper), threads))
      dr <- draws_theta(object$prior, m, z, k)
      for (j in seq_along(sel)) {
        i <- sel[j]
        th <- dr$theta[[j]]
        lq <- dr$log_q[[j]]
        if (dr$n_inside[j] < k) {
          keep <- which(dr$inside[(j - 1) * k + seq_len(k)])
          th <- th[keep, , drop = FALSE]
          lq <- lq[keep]
        }
        if (nrow(th) > need[i]) {
          th <- th[seq_len(need[i]), , drop = FALSE]
          lq <- lq[seq_len(need[i])]
        }
        # the first attempt usually keeps all: no copies then (10^4 observations)
        theta[[i]] <- if (is.null(theta[[i]])) th else rbind(theta[[i]], th)
        log_q[[i]] <- if (is.null(log_q[[i]])) lq else c(log_q[[i]], lq)
        drawn[i] <- drawn[i] + k
        inside[i] <- inside[i] + dr$n_inside[j]
        need[i] <- need[i] - nrow(th)
      }
    }
  }
  if (any(need == n))
    stop(sprintf(paste0("no draw of the surrogate fell inside the prior's support for observation %s ",
                        "(of %d): it is probably far outside the simulations the network was trained on"),
                 paste(utils::head(which(need == n), 5), collapse = ", "), n_obs), call. = FALSE)
  if (any(need > 0))
    warning(sprintf("only %d of %d draws fell inside the prior's support for %d observation(s)",
                    min(n - need), n, sum(need > 0)), call. = FALSE)
  # the acceptance rate estimates the surrogate's mass inside the support: every draw counts
  # (counting only the kept ones would bias it, and so log_evidence, low)
  list(theta = theta, log_q = log_q, acceptance = pmin(1, inside / pmax(drawn, 1)),
       drawn = drawn)
}

# Standardised draws z (d x n, from C_r_model_sample, k per observation) as each
# observation's parameters (k x d, named) and log-densities, with which draws lie inside
# the prior's support and how many per observation: box bounds in C, custom blocks in R.
draws_theta <- function(prior, m, z, k) {
  prior <- prior_resolve(prior)
  dr <- .Call(C_r_draws_theta, z, attr(z, "log_prob"), as.integer(k),
              as.double(m$theta_mean), as.double(m$theta_sd), as.double(prior$lower),
              as.double(prior$upper), as.character(m$names))
  if (any(vapply(prior$components, inherits, logical(1), "nbi_custom"))) {
    dr$inside <- support_custom(prior, do.call(rbind, dr$theta), dr$inside)
    dr$n_inside <- colSums(matrix(dr$inside, k))
  }
  dr
}

# The proposal of importance sampling: the surrogate with its base widened by this factor
# (fit(..., temper = ) sets it; 1 = the surrogate itself).
proposal_temper <- function(object) if (is.null(object$temper)) 1 else object$temper
