# SNPE-IS (seed 000, Algorithm 1). Round i proposes from the surrogate of round i - 1 (the
# prior for i = 1), simulates, weighs those simulations against the exact likelihood (no
# extra simulator calls) and records n_eff; it stops, reverting to the best surrogate, when
# n_eff drops, and otherwise trains on the kept rounds with the plain NLL, warm-started.
snpe_is <- function(object, theta1, x1, n_sims, n_rounds, x_obs, x_err, n_reuse, neff_target,
                    threads, verbose, train, t0) {
  x_obs <- if (is_list_featurizer(object$featurizer))
    check_item(x_obs, object$featurizer, "x_obs") else flatten_obs(x_obs)
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
      kept <- r - 1
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
    kept <- r
    if (done) break
  }
  # which round's proposal is the returned surrogate (after a revert, not the last one)
  rounds$kept <- rounds$round == kept
  object$history$rounds <- rounds
  object
}
