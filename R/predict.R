#' Posterior draws for an observation, or for every object of a survey
#'
#' Draws from the fitted surrogate posterior q(theta | x_obs); draws outside the prior's
#' support are redrawn. When a likelihood is available (`x_err`, a numeric `noise`, or the
#' engine's `log_likelihood`), the simulator is run at the draws (in parallel through the
#' user's [future::plan()]) and importance weights
#' w ∝ p(x_obs | theta) p(theta) / q(theta | x_obs) make the result asymptotically exact;
#' `n_eff`, `efficiency`, `log_evidence` (with its standard error) and `pareto_k` say how
#' far to trust it (seed 000, Algorithm 1). `x_obs` may hold many observations (a list, or
#' a matrix with one observation per row): they are sampled together in batched C calls and
#' the result is an `nbi_posterior_list`, whose [as.data.frame()] is a survey table.
#'
#' @section A target for every object:
#' With `n_eff = ` (say 1000), every observation whose weighted draws fall short of it, or
#' whose weights have a heavy tail (Pareto k > 0.7), is escalated: rounds of adaptive
#' importance sampling (population Monte Carlo) fit a mixture of 8 Student-t components (5
#' degrees of freedom) to all its weighted draws so far and draw new proposals from the
#' defensive mixture 0.1 q + 0.9 g, weighed against that mixture's exact density, so the
#' weights stay exact and only their variance changes. After a round whose weights still
#' have a heavy tail (Pareto k > 0.7), the surrogate q in that mixture is widened (its base
#' sds times 1.5 more, up to 4): a surrogate narrower than the posterior leaves tails that a
#' mixture fitted to the draws cannot reach. The rounds are pooled (each with a
#' share proportional to its effective sample size; rounds with Pareto k > 0.7 are left out
#' while others are usable), so their n_eff add up. Each round is sized to close the
#' remaining deficit at the last round's efficiency (at most `n_samples` simulations). The
#' mixtures are fitted, drawn and evaluated in C, batched over every observation still
#' short, and each round's simulations for all of them go through one run of the simulator.
#' An observation stops when it meets the target or has spent `max_sims` simulations.
#'
#' Each posterior then carries a `status`: `"ok"` (n_eff at least the target and Pareto k
#' at most 0.7), `"short"` (budget spent first; `n_eff` says how far it got) or
#' `"out_of_distribution"` (see below; such observations are not escalated), and `n_sims`
#' (simulator calls), `n_proposals` (draws, those outside the support included), `seconds`
#' (its share of the batched work), and `rounds` (n_sims, n_eff, Pareto k and evidence per
#' round, round 0 being the surrogate's, the widening of q in each round's mixture, and
#' which rounds were pooled). Without `n_eff` the
#' status says whether the weights can be trusted (Pareto k <= 0.7); unweighted draws have
#' status `NA` unless out of distribution.
#'
#' @section Out of distribution:
#' An observation unlike every training simulation (seed 001, appendix A) gets a surrogate
#' that is not to be trusted, and escalation from it would waste simulations. Each
#' observation's featurizer output is compared with the training simulations' (squared
#' Mahalanobis distance, calibrated when the engine was fitted on the held-out validation
#' simulations); `ood_p` is the fraction of held-out simulations at least as far (with an
#' exponential tail beyond their 90% quantile), and an observation with `ood_p < ood_level`
#' has status `"out_of_distribution"`. So does one none of whose surrogate draws fell in the
#' prior's support (for a single observation that is an error instead).
#'
#' @param object a fitted [nbi_engine()].
#' @param x_obs the observation, in the layout the network sees (the simulator's output,
#'   or the noise function's output when it appends columns).
#' @param x_err observational errors for the default Gaussian likelihood (one per element
#'   of the observation, or one for all).
#' @param n_samples number of draws per observation (per round when escalating).
#' @param importance `NULL` (weigh when a likelihood is available), `TRUE` or `FALSE`.
#' @param seed optional seed for reproducible draws (or use [set.seed()]). Each
#'   observation's draws come from random streams keyed by the seed and its own values, so
#'   its posterior is the same whichever other observations share the call.
#' @param threads threads for the C core.
#' @param n_eff target effective sample size per observation (`NULL`: no target, no
#'   escalation).
#' @param max_sims budget per observation: the most simulations (likelihood evaluations)
#'   spent on it, the surrogate's draws included (default `10 * max(n_samples, n_eff)`).
#' @param adapt rounds of adaptive importance sampling run whatever the n_eff (default 0);
#'   with `n_eff`, the least number of rounds.
#' @param temper the importance-sampling proposal is the surrogate with its base sds
#'   multiplied by this (>= 1; default: the engine's `temper`, set by an SNPE-IS fit, else
#'   1). A wider proposal guards against an overconfident surrogate; the weights are exact
#'   either way. Unweighted draws (`importance = FALSE`) always come from the surrogate
#'   itself.
#' @param ood_level observations whose featurizer distance has a tail probability below
#'   this among held-out simulations are flagged `"out_of_distribution"` (0: never).
#' @param ... must be empty: an unknown argument is an error.
#' @return An `nbi_posterior` (or `nbi_posterior_list`).
#' @examples
#' sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
#'                   flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
#' eng <- fit(eng, n_sims = 500, n_epochs = 5, seed = 1)
#' post <- predict(eng, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2)
#' post
#' # a surrogate trained on few simulations, escalated to a target n_eff
#' noisy <- nbi_engine(function(theta) rep(theta[["mu"]], 3), nbi_prior(mu = prior_normal(0, 1)),
#'                     flow = flow_maf(blocks = 2, hidden = 16, mixture = 2), noise = 0.5)
#' noisy <- fit(noisy, n_sims = 200, n_epochs = 3, seed = 1)
#' refined <- predict(noisy, c(0.5, 0.4, 0.7), n_samples = 500, seed = 2, n_eff = 1000)
#' refined$status
#' refined$rounds
#' @export
predict.nbi_engine <- function(object, x_obs, x_err = NULL, n_samples = 2000,
                               importance = NULL, seed = NULL, threads = NULL, n_eff = NULL,
                               max_sims = NULL, adapt = 0, temper = NULL, ood_level = 1e-4,
                               ...) {
  check_dots(list(...), "predict")
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
  if (is.null(temper)) temper <- proposal_temper(object)
  check_number(temper, "temper", lower = 1, upper = 100)
  if (!weigh) temper <- 1
  check_count(adapt, "adapt", min = 0, max = 100)
  if (!is.null(n_eff)) check_number(n_eff, "n_eff", lower = 1)
  if ((!is.null(n_eff) || adapt > 0) && !weigh)
    stop(sprintf("`%s` needs importance weights: a likelihood (`x_err`, numeric `noise` or `log_likelihood`) and `importance` not FALSE",
                 if (!is.null(n_eff)) "n_eff" else "adapt"), call. = FALSE)
  if (is.null(max_sims)) max_sims <- 10 * max(n_samples, if (is.null(n_eff)) 0 else n_eff)
  check_count(max_sims, "max_sims", min = n_samples)
  check_number(ood_level, "ood_level", lower = 0, upper = 1)
  run <- function() {
    items <- obs$items
    keys <- obs_keys(items, draw_seed())
    n_obs <- length(items)
    p_per <- max(1, length(items[[1]]))
    block <- max(1L, floor(2.5e7 / (n_samples * p_per)))
    blocks <- split(seq_len(n_obs), ceiling(seq_len(n_obs) / block))
    prog <- progressr::progressor(steps = n_obs)
    posts <- vector("list", n_obs)
    for (b in blocks) {
      enc <- encode_obs(object, items[b])
      oc <- ood_check(object, enc, threads)
      ood <- if (is.null(oc)) rep(FALSE, length(b)) else oc$p < ood_level
      pb <- if (weigh) {
        escalate_posteriors(object, items[b], enc, x_err, n_samples, threads, temper, n_eff,
                            max_sims, adapt, keys[b], ood, single = obs$single,
                            tick = function(k) prog(amount = k))
      } else {
        unweighted_posteriors(object, items[b], enc, n_samples, threads, keys[b], ood, obs$single)
      }
      if (!weigh) prog(amount = length(b))
      for (j in seq_along(b)) {
        pb[[j]]$ood_p <- if (is.null(oc)) NA_real_ else oc$p[j]
        pb[[j]]$ood_distance <- if (is.null(oc)) NA_real_ else oc$d2[j]
      }
      posts[b] <- pb
    }
    names(posts) <- names(items)
    warn_statuses(posts, weigh, obs$single)
    if (obs$single) posts[[1]] else structure(posts, class = "nbi_posterior_list")
  }
  if (is.null(seed)) run() else with_seed(seed, run())
}

# Surrogate draws without weights (importance = FALSE).
unweighted_posteriors <- function(object, items, enc, n_samples, threads, keys, ood, single) {
  draws <- sample_in_support(object, items, n_samples, threads, keys = keys, enc = enc)
  if (single && draws$none[1]) stop_no_support(draws$none)
  d <- length(object$model$theta_mean)
  lapply(seq_along(items), function(i) {
    th <- if (draws$none[i]) matrix(numeric(0), 0, d, dimnames = list(NULL, object$model$names))
          else draws$theta[[i]]
    p <- new_posterior(th, if (draws$none[i]) numeric(0) else draws$log_q[[i]], items[[i]],
                       draws$acceptance[i])
    p$status <- if (ood[i] || draws$none[i]) "out_of_distribution" else NA_character_
    p$n_sims <- 0
    p$n_proposals <- draws$drawn[i]
    p
  })
}

# The warnings of a predict() call: for one observation, about its weights; for many, one
# line counting those short of their target or out of distribution.
warn_statuses <- function(posts, weigh, single) {
  status <- vapply(posts, function(p) if (is.null(p$status)) NA_character_ else p$status, "")
  if (single) {
    p <- posts[[1]]
    if (identical(p$status, "out_of_distribution"))
      warning(sprintf("the observation is unlike the training simulations (ood_p = %.2g): the surrogate is not to be trusted, and it was not escalated",
                      p$ood_p), call. = FALSE)
    else if (weigh) warn_weights(nrow(p$theta) > 0 && !any(p$weights > 0), p$pareto_k)
    return(invisible())
  }
  n_short <- sum(status == "short", na.rm = TRUE)
  n_ood <- sum(status == "out_of_distribution", na.rm = TRUE)
  if (n_short + n_ood > 0)
    warning(sprintf("%d of %d observations short of their target or with Pareto k > 0.7 (status \"short\"), %d out of distribution; see summary() and as.data.frame()",
                    n_short, length(posts), n_ood), call. = FALSE)
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
  z <- shift_z(z, enc, if (length(obs$items) == 1) rep(1L, ncol(z)) else seq_len(ncol(z)), -1)
  with_blas_threads(1L, .Call(C_r_model_log_prob, enc$spec, m$params, enc$x, z, 1, threads)) -
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
  xd <- object$x_dim
  # one observation in the simulator's own matrix layout (a length x channels sequence, or
  # the matrix / data frame the simulator returned), flattened as fit() flattened it
  if (is.matrix(x_obs) && length(x_obs) == p &&
      ((ch > 1 && ncol(x_obs) == ch) || (length(xd) == 2 && all(dim(x_obs) == xd))))
    x_obs <- flatten_obs(x_obs)
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
# each), as one list(x, kept, n_cut) per observation with rows numbered within it.
split_sims <- function(sims, sizes) {
  end <- cumsum(sizes)
  owner <- findInterval(sims$kept - 1, end) + 1  # the observation of each kept row
  cut_owner <- findInterval(attr(sims, "cut") - 1, end) + 1
  lapply(seq_along(sizes), function(i) {
    sel <- which(owner == i)
    x <- if (is.matrix(sims$x)) sims$x[sel, , drop = FALSE] else sims$x[sel]
    list(x = x, kept = sims$kept[sel] - (end[i] - sizes[i]), n_cut = sum(cut_owner == i))
  })
}

# Draws from q(theta | x) for each observation in `items`, redrawing those outside the
# prior's support. With `keys` (obs_keys()), observation i's draws come from its own streams
# (derive_seed(keys[i], 0, 4 + attempt)), so they do not depend on the other observations;
# without, from one seed drawn from the session's RNG. An observation none of whose draws
# fell inside the support gets NULL (and acceptance 0).
sample_in_support <- function(object, items, n, threads, temper = 1, keys = NULL,
                              enc = encode_obs(object, items)) {
  m <- object$model
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
      seed <- if (is.null(keys)) draw_seed() else derive_seed(keys[sel], 0, 3 + attempt)
      z <- with_blas_threads(1L, .Call(C_r_model_sample, enc$spec, m$params,
                                            xs[, sel, drop = FALSE], k, seed,
                                            as.numeric(temper), threads))
      z <- shift_z(z, enc, rep(sel, each = k))
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
  none <- need == n
  theta[none] <- list(NULL)
  log_q[none] <- list(NULL)
  if (any(need > 0 & !none))
    warning(sprintf("only %d of %d draws fell inside the prior's support for %d observation(s)",
                    min(n - need[!none]), n, sum(need > 0 & !none)), call. = FALSE)
  # the acceptance rate estimates the surrogate's mass inside the support: every draw counts
  # (counting only the kept ones would bias it, and so log_evidence, low)
  list(theta = theta, log_q = log_q, acceptance = pmin(1, inside / pmax(drawn, 1)),
       drawn = drawn, none = none)
}

# The error for observations none of whose surrogate draws fell inside the prior's support.
stop_no_support <- function(none) {
  stop(sprintf(paste0("no draw of the surrogate fell inside the prior's support for observation %s ",
                      "(of %d): it is probably far outside the simulations the network was trained on"),
               paste(utils::head(which(none), 5), collapse = ", "), length(none)), call. = FALSE)
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
