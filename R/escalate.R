# Trust for every object: predict()'s importance sampling, escalated per observation.
#
# Round 0 importance-samples each observation's surrogate q (seed 000, Algorithm 1). An
# observation short of its target (n_eff below it, or Pareto k > 0.7) then gets rounds of
# adaptive importance sampling (population Monte Carlo, Cappé et al. 2004): a mixture g of
# Student-t components is fitted to all its weighted draws so far and new proposals come
# from the defensive mixture m = alpha q + (1 - alpha) g (Hesterberg 1995), stratified:
# round(alpha N) of N draws from q, the rest from g, each weighed by
# p(x | theta) p(theta) / m(theta). The weights are exact whatever g is (only their variance
# depends on the fit), and q's share keeps them bounded wherever the surrogate has mass.
# The mixtures are fitted, drawn from and evaluated in C (src/infer/tmix.c), batched over
# the observations still short; each round's simulations for all of them go through one run
# of the simulator (the user's future plan).
#
# Rounds are pooled: round r's self-normalised estimate enters with a share proportional to
# its effective sample size (the inverse-variance weighting of independent estimates whose
# variances scale as 1 / ESS), so the pooled n_eff is about the sum of the rounds'; a round
# whose weights have a heavy tail (Pareto k > 0.7) is left out while other rounds are usable.
#
# Every random draw of an observation comes from streams keyed by its own values and the
# seed (obs_keys()), so its posterior does not depend on the other observations in the call.

adapt_settings <- list(components = 8L, df = 5, alpha = 0.1, shrink = 1, inflate = 1.2,
                       floor = 1e-3, em_iters = 30L, kmeans_iters = 20L, em_rows = 5000L,
                       laplace_share = 0.3, laplace_below = 100, laplace_step = 4,
                       min_round = 200L, widen_above = 0.7, widen_step = 1.5,
                       widen_max = 4)
tmix_c_settings <- c("components", "em_iters", "kmeans_iters", "em_rows", "df", "shrink",
                     "inflate", "floor", "laplace_share", "laplace_below", "laplace_step")

# One 52-bit key per observation (its values mixed with `base`, from the session's RNG).
obs_keys <- function(items, base) {
  vapply(items, function(v) .Call(C_r_obs_keys, as.double(v), length(v), base), numeric(1))
}

# A seed for the C core from an observation's key, the round and a purpose (1: surrogate
# draws, 2: mixture fit, 3: mixture draws, 4 + attempt: redraws outside the support).
derive_seed <- function(key, round, purpose) (key + round * 1000003 + purpose * 7919) %% 2^52

# The integer start of an observation's simulator streams in a round.
stream_start <- function(key, round) as.integer((key %% 2147480000) + round * 7919 + 1) %% .Machine$integer.max

# Simulations at each observation's proposals (a list of parameter matrices), in one run of
# the simulator: chunks never span two observations, and each observation's rows get
# L'Ecuyer streams started from its key, so a stochastic simulator gives the same outputs
# whichever observations share the call. Nothing is stored (predict's simulations are used
# once). Returns one list(x, kept) per observation, with the number of failures and the
# first failure as attributes.
simulate_proposals <- function(object, thetas, keys, round) {
  sizes <- vapply(thetas, function(t) if (is.null(t)) 0L else nrow(t), integer(1))
  if (isFALSE(object$simulate_for_likelihood))  # the likelihood needs theta alone
    return(structure(lapply(sizes, function(n) list(x = NULL, kept = seq_len(n))),
                     n_failed = 0L, first_failure = NULL))
  theta <- do.call(rbind, thetas)
  if (!length(theta) || nrow(theta) == 0)
    return(lapply(thetas, function(t) list(x = NULL, kept = integer(0))))
  seeds <- do.call(rbind, lapply(seq_along(thetas), function(i)
    if (sizes[i] > 0) sim_make_seeds(sizes[i], start = stream_start(keys[i], round))))
  end <- cumsum(sizes)
  idx <- unlist(lapply(seq_along(sizes), function(i) {
    if (sizes[i] == 0) return(list())
    rows <- (end[i] - sizes[i]) + seq_len(sizes[i])
    unname(split(rows, ceiling(seq_along(rows) / 1000)))
  }), recursive = FALSE)
  old <- rng_state()
  on.exit(rng_restore(old), add = TRUE)
  res <- sim_execute(object$simulator, isTRUE(object$vectorized), theta, seeds, idx,
                     sim_check_x_dim(object$x_dim))
  sims <- sim_collect(theta, res, object$prior$names, strict = FALSE)
  out <- split_sims(sims, sizes)
  attr(out, "n_failed") <- sims$n_failed
  attr(out, "first_failure") <- attr(sims, "first_failure")
  out
}

# One round of one observation: its proposals theta (n x d) with the proposal's log density
# log_m, the surrogate's log density log_q, and the number of proposals the evidence
# estimate divides by (draws outside the support count, with weight 0). `sims`: the
# simulations at theta (list(x, kept)).
weigh_round <- function(object, x_obs, x_err, theta, log_m, log_q, n_div, sims, extra_var = 0) {
  keep <- sims$kept
  theta <- theta[keep, , drop = FALSE]
  # failed simulations leave the estimate; cut ones stay in it with weight 0 (the selected
  # population's likelihood includes passing the cut)
  n_cut <- if (is.null(sims$n_cut)) 0L else sims$n_cut
  n_div <- n_div - (length(log_m) - length(keep) - n_cut)
  if (!length(keep)) return(list(theta = theta, log_w = numeric(0), log_p = numeric(0), log_q = numeric(0),
                                 n_div = n_div, n_eff = 0, pareto_k = NA_real_,
                                 log_z = -Inf, rel_var = Inf))
  ll <- eval_log_lik(object, x_obs, sims$x, theta, x_err)
  log_w <- ll + log_prior(object$prior, theta) - log_m[keep]
  log_w[is.nan(log_w) | log_w == Inf] <- -Inf
  list(theta = theta, log_w = log_w, log_p = log_w + log_m[keep], log_q = log_q[keep], n_div = n_div,
       n_eff = max(0, kish_n(log_w) - 1),
       pareto_k = if (any(is.finite(log_w))) pareto_k(log_w) else NA_real_,
       log_z = log_mean_w(log_w, n_div), rel_var = rel_var_w(log_w, n_div) + extra_var)
}

# Kish's effective sample size 1 / sum(w^2) of normalised weights (0 without any weight).
kish_n <- function(log_w) {
  if (!any(is.finite(log_w))) return(0)
  w <- exp(log_w - max(log_w))
  sum(w)^2 / sum(w^2)
}

# log of sum(exp(log_w)) / n and the relative variance of that mean (delta method).
log_mean_w <- function(log_w, n) {
  if (!any(is.finite(log_w)) || n < 1) return(-Inf)
  m <- max(log_w)
  m + log(sum(exp(log_w - m)) / n)
}
rel_var_w <- function(log_w, n) {
  if (!any(is.finite(log_w)) || n < 2) return(Inf)
  w <- c(exp(log_w - max(log_w)), numeric(max(0, n - length(log_w))))
  stats::var(w) / n / mean(w)^2
}

# The pooled posterior of an observation's rounds: the rounds used (heavy-tailed ones left
# out while others are usable), their draws with normalised weights lambda_r w_ri /
# sum_i w_ri (lambda_r proportional to the round's effective sample size 1 / sum w^2, i.e.
# n_eff + 1), the evidence as the inverse-variance weighted mean of the rounds' estimates.
# Its Pareto k is the largest of the pooled rounds' (each round's weights have their own
# tail; the pooled set is a mixture of differently scaled ones, whose fitted tail would mean
# nothing).
pool_rounds <- function(rounds) {
  ne <- vapply(rounds, `[[`, 0, "n_eff") + 1
  k <- vapply(rounds, `[[`, 0, "pareto_k")
  usable <- vapply(rounds, function(r) is.finite(r$log_z), logical(1))
  good <- usable & is.finite(k) & k <= 0.7
  use <- if (any(good)) good else usable
  if (!any(use)) use <- seq_along(rounds) == 1
  sel <- rounds[use]
  lam <- ne[use] / max(sum(ne[use]), 1e-300)
  parts <- lapply(seq_along(sel), function(j) {
    lw <- sel[[j]]$log_w
    if (!any(is.finite(lw))) return(lw)
    lw - (max(lw) + log(sum(exp(lw - max(lw))))) + log(lam[j])
  })
  lw <- unlist(parts)
  theta <- do.call(rbind, lapply(sel, `[[`, "theta"))
  log_q <- unlist(lapply(sel, `[[`, "log_q"))
  rv <- vapply(sel, `[[`, 0, "rel_var")
  lz <- vapply(sel, `[[`, 0, "log_z")
  ok <- is.finite(lz) & is.finite(rv) & rv > 0
  if (any(ok)) {
    a <- (1 / rv[ok]) / sum(1 / rv[ok])
    m <- max(lz[ok])
    log_z <- m + log(sum(a * exp(lz[ok] - m)))
    log_z_se <- sqrt(1 / sum(1 / rv[ok]))
  } else {
    log_z <- if (any(is.finite(lz))) max(lz) else -Inf
    log_z_se <- NA_real_
  }
  fin <- any(is.finite(lw))
  w <- if (fin) exp(lw - max(lw)) else numeric(length(lw))
  if (fin) w <- w / sum(w)
  list(theta = theta, log_q = log_q, log_weights = lw, weights = w,
       n_eff = if (fin) 1 / sum(w^2) - 1 else 0,
       pareto_k = if (fin) max(k[use]) else NA_real_, log_evidence = log_z,
       log_evidence_se = log_z_se, used = which(use) - 1L)
}

# What the next mixture is fitted to: the draws of every round with their raw importance
# weights p / m_r, which all rounds share a scale for (each round's mean weight estimates the
# same evidence). A round far from the posterior has tiny weights and drops out by itself;
# a heavy-tailed round (left out of the estimate) still says where the posterior has mass:
# its heaviest draws are where its proposal fell short, typically a mode it missed.
fit_pool <- function(rounds) {
  use <- vapply(rounds, function(r) any(is.finite(r$log_w)), logical(1))
  if (!any(use)) {
    n <- nrow(rounds[[1]]$theta)
    return(list(theta = rounds[[1]]$theta, log_weights = numeric(n), log_p = rep(-Inf, n)))
  }
  list(theta = do.call(rbind, lapply(rounds[use], `[[`, "theta")),
       log_weights = unlist(lapply(rounds[use], `[[`, "log_w")),
       log_p = unlist(lapply(rounds[use], `[[`, "log_p")))
}

# Whether an observation's pooled posterior meets the target (and has a trusted tail).
meets_target <- function(p, target) {
  is.finite(p$pareto_k) && p$pareto_k <= 0.7 && p$n_eff >= target
}

# The surrogate's log densities (in parameter units) at the rows of `thetas` (a list, one
# matrix per observation `obs`), with its base widened by `temper`; batched in one C call.
surrogate_log_prob <- function(object, enc, obs, thetas, temper, threads) {
  m <- object$model
  counts <- vapply(thetas, nrow, integer(1))
  if (sum(counts) == 0) return(lapply(counts, function(n) numeric(0)))
  z <- t((t(do.call(rbind, thetas)) - m$theta_mean) / m$theta_sd)
  z <- shift_z(t(z), enc, rep(obs, counts), -1)
  lp <- with_blas_threads(1L, .Call(C_r_model_log_prob_obs, enc$spec, m$params,
                                    enc$x[, obs, drop = FALSE], z, counts, as.numeric(temper),
                                    threads)) - sum(log(m$theta_sd))
  end <- cumsum(counts)
  lapply(seq_along(counts), function(j) lp[(end[j] - counts[j]) + seq_len(counts[j])])
}

# The proposals of one adaptive round for the observations `obs` (indices into `state`):
# mixtures fitted in C to each one's draws of every round (fit_pool()), `sizes` draws inside the support wanted
# for each. The defensive component is the surrogate with its base widened by `temper`
# times the observation's `widen` (grown after rounds whose weights had a heavy tail: a
# surrogate narrower than the posterior leaves tails that no fit to the draws can reach).
# Returns per observation list(theta, log_m, log_q, n_div) (only draws inside the support;
# log_q the surrogate's density at `temper`), or NULL where the fit failed.
adaptive_proposals <- function(object, items, enc, state, obs, sizes, round, threads, temper,
                               s = adapt_settings) {
  m <- object$model
  d <- length(m$theta_mean)
  to_z <- function(th) t((t(th) - m$theta_mean) / m$theta_sd)
  log_jac <- sum(log(m$theta_sd))
  # a pool without any weight (the likelihood is zero at every surrogate draw) is the draws
  # themselves, unweighted: a heuristic start that keeps the weights exact
  pools <- lapply(obs, function(i) fit_pool(state[[i]]$rounds))
  counts <- vapply(pools, function(p) nrow(p$theta), integer(1))
  Z <- t(to_z(do.call(rbind, lapply(pools, `[[`, "theta"))))
  LW <- unlist(lapply(pools, `[[`, "log_weights"))
  S0 <- array(unlist(lapply(obs, function(i) state[[i]]$S0)), c(d, d, length(obs)))
  keys <- vapply(obs, function(i) state[[i]]$key, 0)
  LP <- unlist(lapply(pools, `[[`, "log_p"))
  LP[!is.finite(LP)] <- -Inf
  mix <- .Call(C_r_tmix_fit, Z, as.double(LW), as.double(LP), as.integer(counts), S0,
               s[tmix_c_settings], derive_seed(keys, round, 2), threads)
  fitted <- mix$status == 0
  out <- vector("list", length(obs))
  if (!any(fitted)) return(out)
  f <- which(fitted)
  sub <- list(share = mix$share[, f, drop = FALSE], mu = mix$mu[, , f, drop = FALSE],
              chol = mix$chol[, , , f, drop = FALSE], df = mix$df)
  acc <- vapply(obs[f], function(i) state[[i]]$acceptance, 0)
  N <- pmin(ceiling(sizes[f] / pmax(acc, 0.05)), 20L * sizes[f])
  n_q <- pmax(1L, as.integer(round(s$alpha * N)))
  n_g <- N - n_q
  # mixture draws, in parameter units
  zg <- .Call(C_r_tmix_sample, sub, as.integer(n_g), derive_seed(keys[f], round, 3), threads)
  theta_g <- t(zg * m$theta_sd + m$theta_mean)
  lg_g <- attr(zg, "log_density") - log_jac
  # defensive draws from the widened surrogate, grouped by their number and widening (each
  # observation's own stream)
  wid <- vapply(obs[f], function(i) state[[i]]$widen, 0)
  group <- paste(n_q, wid)
  qd <- vector("list", length(f))
  for (g in unique(group)) {
    sel <- which(group == g)
    nq <- n_q[sel[1]]
    z <- with_blas_threads(1L, .Call(C_r_model_sample, enc$spec, m$params,
                                     enc$x[, obs[f][sel], drop = FALSE], as.integer(nq),
                                     derive_seed(keys[f][sel], round, 1),
                                     as.numeric(temper * wid[sel[1]]), threads))
    z <- shift_z(z, enc, rep(obs[f][sel], each = nq))
    th <- t(z * m$theta_sd + m$theta_mean)
    lq <- attr(z, "log_prob") - log_jac
    for (j in seq_along(sel)) {
      rows <- (j - 1) * nq + seq_len(nq)
      qd[[sel[j]]] <- list(theta = th[rows, , drop = FALSE], log_d = lq[rows])
    }
  }
  g_end <- cumsum(n_g)
  parts <- lapply(seq_along(f), function(j) {
    rows <- (g_end[j] - n_g[j]) + seq_len(n_g[j])
    theta <- rbind(qd[[j]]$theta, theta_g[rows, , drop = FALSE])
    colnames(theta) <- m$names
    inside <- in_support(object$prior, theta)
    list(theta = theta[inside, , drop = FALSE], inside = inside,
         log_d = c(qd[[j]]$log_d, rep(NA_real_, n_g[j]))[inside],
         log_g = c(rep(NA_real_, n_q[j]), lg_g[rows])[inside], from_q = seq_len(N[j]) <= n_q[j])
  })
  # the missing densities: the defensive component at the mixture's draws (batched per
  # widening), g at the surrogate's
  for (w in unique(wid)) {
    sel <- which(wid == w)
    ld <- surrogate_log_prob(object, enc, obs[f][sel], lapply(parts[sel], function(p)
      p$theta[!p$from_q[p$inside], , drop = FALSE]), temper * w, threads)
    for (j in seq_along(sel)) {
      p <- parts[[sel[j]]]
      parts[[sel[j]]]$log_d[!p$from_q[p$inside]] <- ld[[j]]
    }
  }
  # the surrogate's own density (at `temper`) where it was widened: the draws' log_q
  wide <- which(wid != 1)
  lq_wide <- surrogate_log_prob(object, enc, obs[f][wide], lapply(parts[wide], `[[`, "theta"),
                                temper, threads)
  for (j in seq_along(wide)) parts[[wide[j]]]$log_q <- lq_wide[[j]]
  need_g <- lapply(parts, function(p) p$theta[p$from_q[p$inside], , drop = FALSE])
  ng_counts <- vapply(need_g, nrow, integer(1))
  if (sum(ng_counts) > 0)
    lg_all <- .Call(C_r_tmix_log_density, sub, t(to_z(do.call(rbind, need_g))), ng_counts,
                    threads) - log_jac
  gq_end <- cumsum(ng_counts)
  for (j in seq_along(f)) {
    p <- parts[[j]]
    fq <- p$from_q[p$inside]
    if (ng_counts[j] > 0) p$log_g[fq] <- lg_all[(gq_end[j] - ng_counts[j]) + seq_len(ng_counts[j])]
    a <- n_q[j] / N[j]
    log_m <- log_add_exp(log(a) + p$log_d, log1p(-a) + p$log_g)
    log_q <- if (is.null(p$log_q)) p$log_d else p$log_q
    out[[f[j]]] <- list(theta = p$theta, log_m = log_m, log_q = log_q, n_div = N[j],
                        acceptance = mean(p$inside), n_drawn = N[j])
  }
  out
}

# The widening of the defensive surrogate after an adaptive round whose weights had Pareto k
# `k`: a heavy tail (k > widen_above) the mixture fitted to the draws did not remove grows it.
next_widen <- function(widen, k, s = adapt_settings) {
  if (is.finite(k) && k <= s$widen_above) return(widen)
  min(widen * s$widen_step, s$widen_max)
}

# log(exp(a) + exp(b)), elementwise and stable (-Inf allowed).
log_add_exp <- function(a, b) {
  m <- pmax(a, b)
  out <- m + log1p(exp(-abs(a - b)))
  out[m == -Inf] <- -Inf
  out
}

# The size of an observation's next adaptive round: enough inside draws to close its n_eff
# deficit at the efficiency of its last adaptive round (n_samples when unknown), within
# [min_round, n_samples] and what is left of its budget.
round_size <- function(st, target, n_samples, max_sims, fixed, s = adapt_settings) {
  left <- max_sims - st$n_sims
  if (fixed) return(min(n_samples, left))
  deficit <- target - st$pool$n_eff
  last <- st$rounds[[length(st$rounds)]]
  eff <- if (length(st$rounds) > 1 && length(last$log_w) > 0) last$n_eff / length(last$log_w) else NA
  size <- if (is.na(eff) || deficit <= 0) n_samples else ceiling(1.25 * deficit / max(eff, 0.01))
  min(max(size, min(s$min_round, n_samples)), n_samples, left)
}

# Weighted posteriors with escalation for the observations `items`: importance sampling of
# the surrogate (round 0), then adaptive rounds for those short of `target` (n_eff) until
# they meet it, their budget `max_sims` (simulator calls) is spent, or (with `target` NULL)
# `adapt` rounds have run. `ood`: TRUE for observations flagged out of distribution (not
# escalated). `single`: one observation, for which no draw inside the prior's support is an
# error rather than a status. Returns a list of nbi_posterior.
escalate_posteriors <- function(object, items, enc, x_err, n_samples, threads, temper, target,
                                max_sims, adapt, keys, ood, single = FALSE,
                                tick = function(k) NULL) {
  n_obs <- length(items)
  m <- object$model
  now <- function() proc.time()[["elapsed"]]
  secs <- numeric(n_obs)
  charge <- function(obs, t0) secs[obs] <<- secs[obs] + (now() - t0) / length(obs)
  t0 <- now()
  draws <- sample_in_support(object, items, n_samples, threads, temper = temper, keys = keys,
                             enc = enc)
  if (single && draws$none[1]) stop_no_support(draws$none)
  has <- !draws$none
  sims <- simulate_proposals(object, draws$theta, keys, 0)
  n_failed <- attr(sims, "n_failed")
  first_failure <- attr(sims, "first_failure")
  to_z <- function(th) t((t(th) - m$theta_mean) / m$theta_sd)
  d <- length(m$theta_mean)
  state <- lapply(seq_len(n_obs), function(i) {
    th <- if (has[i]) draws$theta[[i]] else matrix(numeric(0), 0, d, dimnames = list(NULL, m$names))
    lq <- if (has[i]) draws$log_q[[i]] else numeric(0)
    # the acceptance rate is estimated from the draws: its relative variance adds to the
    # evidence's
    a <- draws$acceptance[i]
    r0 <- if (has[i]) weigh_round(object, items[[i]], x_err, th, lq - log(a), lq, nrow(th),
                                  sims[[i]], if (a < 1) (1 - a) / (a * draws$drawn[i]) else 0)
          else list(theta = th, log_w = numeric(0), log_p = numeric(0), log_q = numeric(0), n_div = 0, n_eff = 0,
                    pareto_k = NA_real_, log_z = -Inf, rel_var = Inf)
    S0 <- if (nrow(th) > d + 1) stats::cov(to_z(th)) / 4 else diag(d) / 4
    if (!all(is.finite(S0)) || any(diag(as.matrix(S0)) <= 1e-12) ||
        inherits(try(chol(as.matrix(S0)), silent = TRUE), "try-error")) S0 <- diag(d) / 4
    list(key = keys[i], rounds = list(r0), pool = pool_rounds(list(r0)), S0 = as.matrix(S0),
         acceptance = max(draws$acceptance[i], 1e-3), n_sims = nrow(th),
         n_proposals = draws$drawn[i], fit_failed = FALSE, widen = 1)
  })
  charge(seq_len(n_obs), t0)
  fixed <- is.null(target)
  goal <- if (fixed) 0 else target
  short <- function(i) {
    st <- state[[i]]
    r <- length(st$rounds) - 1
    if (!has[i] || ood[i] || st$fit_failed || st$n_sims >= max_sims) return(FALSE)
    if (r < adapt) return(TRUE)
    !fixed && !meets_target(st$pool, goal)
  }
  done <- rep(FALSE, n_obs)
  finish <- function() {
    now_done <- !done & !vapply(seq_len(n_obs), short, logical(1))
    if (any(now_done)) tick(sum(now_done))
    done <<- done | now_done
  }
  finish()
  round <- 0L
  while (any(!done) && round < 1000L) {
    round <- round + 1L
    t0 <- now()
    active <- which(!done)
    sizes <- vapply(active, function(i) round_size(state[[i]], goal, n_samples, max_sims, fixed),
                    numeric(1))
    props <- adaptive_proposals(object, items, enc, state, active, sizes, round, threads, temper)
    for (j in which(vapply(props, is.null, logical(1)))) state[[active[j]]]$fit_failed <- TRUE
    ok <- which(!vapply(props, is.null, logical(1)))
    if (length(ok)) {
      sims <- simulate_proposals(object, lapply(props[ok], `[[`, "theta"), keys[active[ok]], round)
      n_failed <- n_failed + attr(sims, "n_failed")
      if (is.null(first_failure)) first_failure <- attr(sims, "first_failure")
      for (j in seq_along(ok)) {
        i <- active[ok[j]]
        p <- props[[ok[j]]]
        r <- weigh_round(object, items[[i]], x_err, p$theta, p$log_m, p$log_q, p$n_div, sims[[j]])
        st <- state[[i]]
        r$widen <- st$widen
        st$rounds[[length(st$rounds) + 1L]] <- r
        st$pool <- pool_rounds(st$rounds)
        st$n_sims <- st$n_sims + nrow(p$theta)
        st$n_proposals <- st$n_proposals + p$n_drawn
        st$acceptance <- max(p$acceptance, 1e-3)
        st$widen <- next_widen(st$widen, r$pareto_k)
        state[[i]] <- st
      }
    }
    charge(active, t0)
    finish()
  }
  if (n_failed > 0)
    warning(sprintf("the simulator failed for %d of the proposals, which were dropped; %s",
                    n_failed, first_failure), call. = FALSE)
  lapply(seq_len(n_obs), function(i) {
    st <- state[[i]]
    p <- st$pool
    post <- new_posterior(p$theta, p$log_q, items[[i]], draws$acceptance[i])
    post[c("log_weights", "weights", "n_eff", "log_evidence", "log_evidence_se", "pareto_k")] <-
      p[c("log_weights", "weights", "n_eff", "log_evidence", "log_evidence_se", "pareto_k")]
    post$efficiency <- if (nrow(p$theta) > 0) p$n_eff / nrow(p$theta) else 0
    post$temper <- temper
    post$status <- if (ood[i] || !has[i]) "out_of_distribution"
                   else if (meets_target(p, goal)) "ok" else "short"
    post$n_sims <- st$n_sims
    post$n_proposals <- st$n_proposals
    post$seconds <- secs[i]
    rs <- st$rounds
    post$rounds <- data.frame(
      round = seq_along(rs) - 1L,
      n_sims = vapply(rs, function(r) length(r$log_w), integer(1)),
      n_eff = vapply(rs, `[[`, 0, "n_eff"),
      pareto_k = vapply(rs, `[[`, 0, "pareto_k"),
      log_evidence = vapply(rs, `[[`, 0, "log_z"),
      widen = vapply(rs, function(r) if (is.null(r$widen)) 1 else r$widen, 0),
      pooled = (seq_along(rs) - 1L) %in% p$used)
    post
  })
}
