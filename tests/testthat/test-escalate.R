# predict(n_eff = ): the Student-t mixtures of adaptive importance sampling (C, batched over
# observations), escalation to a target n_eff with exact weights, statuses, the
# out-of-distribution flag, and the independence of an observation's draws from the others.

# One mixture in the batch layout of the C entries: mu K x d, R a list of upper Cholesky
# factors (S = R'R, as chol() gives).
one_mix <- function(share, mu, R, df = 5) {
  K <- length(share); d <- ncol(mu)
  list(share = matrix(share, K, 1), mu = array(t(mu), c(d, K, 1)),
       chol = array(unlist(R), c(d, d, K, 1)), df = df)
}
mix_logd <- function(g, z) .Call(nbi:::C_r_tmix_log_density, g, t(z), nrow(z), 1L)
mix_draw <- function(g, n, seed = 1) t(.Call(nbi:::C_r_tmix_sample, g, n, seed, 1L))
mix_fit <- function(z, w, S0, settings, seed = 1, threads = 1L, log_p = NULL)
  .Call(nbi:::C_r_tmix_fit, t(z), log(w), log_p, nrow(z), array(S0, c(ncol(z), ncol(z), 1)),
        settings, seed, threads)
fit_settings <- function(...) {
  s <- nbi:::adapt_settings[nbi:::tmix_c_settings]
  s$laplace_share <- 0
  utils::modifyList(s, list(...))
}

test_that("the Student-t mixture's density integrates to 1 and matches its draws (1-D)", {
  g <- one_mix(c(0.3, 0.7), matrix(c(-2, 1.5), 2), list(matrix(0.5), matrix(1.2)))
  dens <- function(z) exp(mix_logd(g, matrix(z)))
  expect_equal(stats::integrate(dens, -Inf, Inf)$value, 1, tolerance = 1e-6)
  # the density of a 1-component mixture is the t density
  g1 <- one_mix(1, matrix(0.3, 1), list(matrix(2)), df = 3)
  expect_equal(dens_g1 <- exp(mix_logd(g1, matrix(c(-1, 0.3, 4)))),
               stats::dt((c(-1, 0.3, 4) - 0.3) / 2, 3) / 2, tolerance = 1e-12)
  z <- mix_draw(g, 40000)
  edges <- c(-Inf, seq(-4, 5, by = 0.75), Inf)
  p <- vapply(seq_len(length(edges) - 1), function(i)
    stats::integrate(dens, edges[i], edges[i + 1])$value, numeric(1))
  obs <- tabulate(findInterval(z, edges), length(edges) - 1)
  expect_lt(sum((obs - 40000 * p)^2 / (40000 * p)), stats::qchisq(0.999, length(p) - 1))
  # the test has teeth: the draws of another mixture fail it
  g2 <- g; g2$share[] <- c(0.5, 0.5)
  obs2 <- tabulate(findInterval(mix_draw(g2, 40000), edges), length(edges) - 1)
  expect_gt(sum((obs2 - 40000 * p)^2 / (40000 * p)), stats::qchisq(0.999, length(p) - 1))
  # the draws' log densities come with them, and a seed fixes the draws
  zz <- .Call(nbi:::C_r_tmix_sample, g, 50L, 7, 1L)
  expect_equal(attr(zz, "log_density"), mix_logd(g, t(zz)), tolerance = 1e-12)
  expect_identical(mix_draw(g, 100, seed = 3), mix_draw(g, 100, seed = 3))
  expect_false(identical(mix_draw(g, 100, seed = 3), mix_draw(g, 100, seed = 4)))
})

test_that("the 2-D mixture density is normalised and its draws have its moments", {
  R1 <- chol(matrix(c(1, 0.6, 0.6, 0.8), 2))
  mu <- rbind(c(-1, 0), c(2, 1))
  share <- c(0.4, 0.6)
  Rs <- list(R1, diag(c(0.5, 0.7)))
  g <- one_mix(share, mu, Rs)
  h <- 0.05
  grid <- as.matrix(expand.grid(seq(-40, 40, by = h), seq(-40, 40, by = h)))
  # the t tails beyond |z| = 40 hold about 1e-6 of the mass
  expect_equal(sum(exp(mix_logd(g, grid))) * h^2, 1, tolerance = 2e-4)
  z <- mix_draw(g, 1e5, seed = 2)
  m <- colSums(share * mu)
  expect_equal(colMeans(z), m, tolerance = 0.03)
  # scale matrix S = R'R; a t_5 component's covariance is S * 5 / 3
  within <- share[1] * crossprod(Rs[[1]]) * 5 / 3 + share[2] * crossprod(Rs[[2]]) * 5 / 3
  between <- Reduce(`+`, lapply(1:2, function(k) share[k] * tcrossprod(mu[k, ] - m)))
  expect_equal(stats::cov(z), within + between, tolerance = 0.05)
})

test_that("the EM fit recovers a two-component mixture, and weights re-target it", {
  set.seed(3)
  n <- 20000
  k <- stats::rbinom(n, 1, 0.3)
  z <- cbind(ifelse(k == 1, -3, 2), ifelse(k == 1, 1, -1)) + matrix(stats::rnorm(2 * n, sd = 0.5), n)
  s <- fit_settings(components = 2L, inflate = 1, shrink = 0, floor = 0, em_rows = 20000L)
  g <- mix_fit(z, rep(1, n), diag(2), s)
  expect_equal(g$status, 0L)
  mu <- t(g$mu[, , 1])
  o <- order(mu[, 1])
  expect_equal(g$share[o, 1], c(0.3, 0.7), tolerance = 0.03)
  expect_equal(mu[o, ], rbind(c(-3, 1), c(2, -1)), tolerance = 0.03)
  expect_equal(crossprod(g$chol[, , o[1], 1]), diag(0.25, 2), tolerance = 0.05)
  # the same fit from 1 or 2 threads, and the fit is a valid mixture for the sampler
  expect_identical(mix_fit(z, rep(1, n), diag(2), s, threads = 2L), g)
  expect_equal(dim(mix_draw(g, 10)), c(10L, 2L))
  # weights p / q turn draws of q = N(0, 2^2) into a fit of p = N(1, 0.6^2), also through a
  # systematic resample (em_rows < n)
  u <- matrix(stats::rnorm(2 * n, sd = 2), n)
  lw <- rowSums(stats::dnorm(u, 1, 0.6, log = TRUE) - stats::dnorm(u, 0, 2, log = TRUE))
  for (rows in c(20000L, 3000L)) {
    g1 <- mix_fit(u, exp(lw - max(lw)), diag(2), fit_settings(components = 1L, inflate = 1,
                                                              shrink = 0, floor = 0, em_rows = rows))
    expect_equal(as.vector(g1$mu), c(1, 1), tolerance = 0.05)
    expect_equal(crossprod(g1$chol[, , 1, 1]), diag(0.36, 2), tolerance = 0.1)
  }
  # inflate widens the scales by that factor
  g2 <- mix_fit(u, exp(lw - max(lw)), diag(2), fit_settings(components = 1L, inflate = 2,
                                                             shrink = 0, floor = 0))
  expect_equal(crossprod(g2$chol[, , 1, 1]), 4 * diag(0.36, 2), tolerance = 0.1)
  # few effective draws give a component pulled towards the shrinkage target, not a point
  g0 <- mix_fit(u[1:3, , drop = FALSE], c(1, 1e-3, 1e-3), diag(2),
                fit_settings(components = 1L, inflate = 1, shrink = 5, floor = 0))
  expect_gt(min(diag(crossprod(g0$chol[, , 1, 1]))), 0.5)
  # ... but a component seen in few draws next to a well-sampled one takes the others'
  # width (pooled within-component covariance), not the far wider S0: a newly found mode
  zz <- rbind(matrix(stats::rnorm(4000, sd = 0.1), 2000), c(5, 5))
  gm <- mix_fit(zz, rep(1, 2001), diag(2), fit_settings(components = 2L, inflate = 1,
                                                        shrink = 1, floor = 0))
  far_k <- which.max(gm$mu[1, , 1])
  expect_equal(gm$mu[, far_k, 1], c(5, 5), tolerance = 1e-6)
  v_far <- diag(crossprod(gm$chol[, , far_k, 1]))
  expect_true(all(v_far > 0.001 & v_far < 0.02))   # about half the near one's 0.01
  # no positive weight: status 1 and a dead mixture
  gz <- .Call(nbi:::C_r_tmix_fit, t(u[1:5, ]), rep(-Inf, 5), NULL, 5L, array(diag(2), c(2, 2, 1)),
              s, 1, 1L)
  expect_equal(gz$status, 1L)
  expect_true(all(gz$share == 0))
})

test_that("the Laplace component jumps to the maximum of a Gaussian log density from its far tail", {
  # target N(m, C) in 2-D; draws only from a region 20 sds away along the first axis
  m <- c(3, -1); C <- matrix(c(0.04, 0.018, 0.018, 0.0225), 2)
  set.seed(21)
  z <- cbind(stats::rnorm(400, m[1] - 4, 0.3), stats::rnorm(400, m[2], 0.3))
  Ci <- solve(C)
  log_p <- -0.5 * rowSums((sweep(z, 2, m) %*% Ci) * sweep(z, 2, m))
  s <- fit_settings(components = 2L, laplace_share = 0.3, laplace_below = 100, laplace_step = 100,
                    inflate = 1, floor = 0)
  g <- mix_fit(z, exp(log_p - max(log_p)), diag(2) * 0.1, s, log_p = log_p)
  expect_equal(dim(g$share), c(3L, 1L))
  expect_equal(g$share[3, 1], 0.3)
  expect_equal(sum(g$share), 1)
  expect_equal(g$mu[, 3, 1], m, tolerance = 1e-6)
  expect_equal(crossprod(g$chol[, , 3, 1]), C, tolerance = 1e-6)
  # the step is capped at laplace_step times the neighbourhood's radius
  g2 <- mix_fit(z, exp(log_p - max(log_p)), diag(2) * 0.1, utils::modifyList(s, list(laplace_step = 0.5)),
                log_p = log_p)
  best <- z[which.max(log_p), ]
  expect_lt(sqrt(sum((g2$mu[, 3, 1] - best)^2 / 0.1)), sqrt(sum((m - best)^2 / 0.1)) / 2)
  # a log density without a maximum (a saddle) gives no Laplace component
  saddle <- z[, 1]^2 - z[, 2]^2
  g3 <- mix_fit(z, rep(1, 400), diag(2) * 0.1, s, log_p = saddle)
  expect_equal(g3$share[3, 1], 0)
  # nor does an n_eff above laplace_below
  g4 <- mix_fit(z, rep(1, 400), diag(2) * 0.1, s, log_p = log_p)
  expect_equal(g4$share[3, 1], 0)
})

test_that("the mixture entries reject malformed input", {
  g <- one_mix(c(0.3, 0.7), matrix(c(-2, 1.5), 2), list(matrix(0.5), matrix(1.2)))
  bad <- g; bad$chol[1] <- -1
  expect_error(mix_logd(bad, matrix(0)), "positive diagonal")
  bad <- g; bad$share[1] <- NA
  expect_error(mix_logd(bad, matrix(0)), "share")
  bad <- g; bad$mu <- 1
  expect_error(mix_logd(bad, matrix(0)), "mu")
  expect_error(.Call(nbi:::C_r_tmix_log_density, g, matrix(0, 1, 3), 2L, 1L), "sum to")
  dead <- g; dead$share[] <- 0
  expect_error(mix_draw(dead, 5), "no live component")
  expect_error(.Call(nbi:::C_r_tmix_fit, matrix(0, 2, 4), rep(0, 4), NULL, 4L,
                     array(diag(2), c(2, 2, 1)), fit_settings(components = 0L), 1, 1L), "components")
  expect_error(.Call(nbi:::C_r_tmix_fit, matrix(0, 2, 4), rep(0, 3), NULL, 4L,
                     array(diag(2), c(2, 2, 1)), fit_settings(), 1, 1L), "log_w")
  expect_error(.Call(nbi:::C_r_tmix_fit, matrix(0, 2, 4), rep(0, 4), rep(0, 3), 4L,
                     array(diag(2), c(2, 2, 1)), fit_settings(laplace_share = 0.3), 1, 1L), "log_p")
})

# Conjugate model: theta ~ N(0, I_2), x = A theta + N(0, 0.5^2 I_3); a surrogate from 3
# epochs on 300 simulations is far from the posterior.
A <- matrix(c(1, 0.2, 1, 0.5, 1, -1), 3, 2)
s_noise <- 0.5
x_obs <- c(0.9, -0.3, 1.6)
post_cov <- function(x) solve(diag(2) + crossprod(A) / s_noise^2)
post_mean <- function(x) as.vector(post_cov() %*% t(A) %*% x / s_noise^2)
log_evidence <- function(x) {
  Sx <- A %*% t(A) + s_noise^2 * diag(3)
  -0.5 * (drop(t(x) %*% solve(Sx) %*% x) + drop(determinant(2 * pi * Sx)$modulus))
}
poor <- fit(nbi_engine(function(theta) as.vector(A %*% theta),
                       nbi_prior(a = prior_normal(0, 1), b = prior_normal(0, 1)),
                       flow = flow_maf(blocks = 2, hidden = 16, mixture = 2), noise = s_noise),
            n_sims = 300, n_epochs = 3, seed = 1, verbose = FALSE)

test_that("escalation reaches the target n_eff with exact weights (conjugate Gaussian)", {
  plain <- predict(poor, x_obs, n_samples = 2000, seed = 2)
  expect_lt(plain$n_eff, 1000)  # the surrogate alone falls short
  post <- suppressWarnings(predict(poor, x_obs, n_samples = 2000, seed = 2, n_eff = 3000))
  expect_identical(post$status, "ok")
  expect_gte(post$n_eff, 3000)
  expect_lte(post$pareto_k, 0.7)
  expect_gt(nrow(post$rounds), 1)
  expect_equal(post$rounds$n_eff[1], plain$n_eff)   # round 0 is plain predict's
  expect_equal(post$n_sims, sum(post$rounds$n_sims))
  expect_lte(post$n_sims, 10 * 3000)
  expect_gt(post$seconds, 0)
  w <- post$weights
  expect_equal(sum(w), 1)
  S <- post_cov(); mu <- post_mean(x_obs)
  m <- colSums(w * post$theta)
  expect_true(all(abs(m - mu) < 3 * sqrt(diag(S) / post$n_eff)))
  sdw <- sqrt(colSums(w * t(t(post$theta) - m)^2))
  expect_true(all(abs(sdw / sqrt(diag(S)) - 1) < 0.05))
  expect_lt(abs(post$log_evidence - log_evidence(x_obs)), 3 * post$log_evidence_se)
  expect_identical(colnames(post$theta), c("a", "b"))
  expect_output(print(post), "status ok")
  # reproducible under a seed
  again <- suppressWarnings(predict(poor, x_obs, n_samples = 2000, seed = 2, n_eff = 3000))
  expect_identical(again$theta, post$theta)
  expect_identical(again$weights, post$weights)
})

test_that("a round with a heavy tail widens the next round's surrogate, and weights stay exact", {
  expect_identical(nbi:::next_widen(1, 0.5), 1)
  expect_identical(nbi:::next_widen(1, 0.9), 1.5)
  expect_identical(nbi:::next_widen(1.5, NA_real_), 2.25)
  expect_identical(nbi:::next_widen(3, 1.2), 4)
  # widen after every round (as if every round's tail were heavy): q is then ever wider in
  # the defensive mixture (half of each round's draws, so that its density matters), and
  # the weights must still give the exact posterior
  s <- nbi:::adapt_settings
  on.exit(utils::assignInNamespace("adapt_settings", s, "nbi"))
  utils::assignInNamespace("adapt_settings",
                           utils::modifyList(s, list(widen_above = -Inf, alpha = 0.5)), "nbi")
  post <- suppressWarnings(predict(poor, x_obs, n_samples = 1000, seed = 3, adapt = 5))
  expect_equal(post$rounds$widen, c(1, 1, 1.5, 2.25, 3.375, 4))
  S <- post_cov(); mu <- post_mean(x_obs)
  m <- colSums(post$weights * post$theta)
  expect_true(all(abs(m - mu) < 3 * sqrt(diag(S) / post$n_eff)))
  sdw <- sqrt(colSums(post$weights * t(t(post$theta) - m)^2))
  expect_true(all(abs(sdw / sqrt(diag(S)) - 1) < 0.06))
  expect_lt(abs(post$log_evidence - log_evidence(x_obs)), 3 * post$log_evidence_se)
  # log_q stays the surrogate's own density, whatever the widening of the proposals
  expect_equal(post$log_q, nbi_log_prob(poor, post$theta, x_obs), tolerance = 1e-9)
  # and the widening did change the proposals
  utils::assignInNamespace("adapt_settings", s, "nbi")
  plain <- suppressWarnings(predict(poor, x_obs, n_samples = 1000, seed = 3, adapt = 5))
  expect_equal(plain$rounds$widen, rep(1, 6))
  expect_false(identical(plain$theta[-(1:3000), ], post$theta[-(1:3000), ]))
})

test_that("fixed rounds (adapt = ) pool exact weights too, and a tiny budget ends short", {
  post <- suppressWarnings(predict(poor, x_obs, n_samples = 2000, seed = 5, adapt = 2))
  expect_equal(nrow(post$rounds), 3)
  expect_equal(post$n_sims, 6000)
  S <- post_cov()
  m <- colSums(post$weights * post$theta)
  expect_true(all(abs(m - post_mean(x_obs)) < 3 * sqrt(diag(S) / post$n_eff)))
  short <- suppressWarnings(predict(poor, x_obs, n_samples = 1000, seed = 2, n_eff = 1e5,
                                    max_sims = 2500))
  expect_identical(short$status, "short")
  expect_equal(short$n_sims, 2500)
  expect_lt(short$n_eff, 1e5)
  expect_gt(short$n_eff, 0)
})

test_that("an observation far outside the training set is flagged, typical ones are not", {
  cal <- poor$model$ood
  expect_false(is.null(cal))
  far <- suppressWarnings(predict(poor, x_obs + 40, n_samples = 500, seed = 2, n_eff = 1000))
  expect_identical(far$status, "out_of_distribution")
  expect_lt(far$ood_p, 1e-6)
  expect_equal(nrow(far$rounds), 1)       # not escalated
  expect_warning(predict(poor, x_obs + 40, n_samples = 500, seed = 2), "unlike the training")
  # observations from the prior predictive: tail probabilities roughly uniform, none flagged
  set.seed(11)
  th <- matrix(stats::rnorm(400), 200)
  xs <- th %*% t(A) + matrix(stats::rnorm(600, sd = s_noise), 200)
  posts <- predict(poor, xs, n_samples = 50, importance = FALSE, seed = 1)
  p <- vapply(posts, `[[`, 0, "ood_p")
  expect_true(all(p > 1e-4))
  expect_lt(abs(mean(p < 0.1) - 0.1), 0.07)
  # ood_level = 0 turns the flag off
  far0 <- suppressWarnings(predict(poor, x_obs + 40, n_samples = 200, seed = 2, ood_level = 0))
  expect_false(identical(far0$status, "out_of_distribution"))
})

test_that("batched escalation of 50 observations gives each one's draws alone", {
  set.seed(12)
  th <- matrix(stats::rnorm(100), 50)
  xs <- th %*% t(A) + matrix(stats::rnorm(150, sd = s_noise), 50)
  batch <- suppressWarnings(predict(poor, xs, n_samples = 300, seed = 9, n_eff = 600))
  expect_s3_class(batch, "nbi_posterior_list")
  expect_gt(mean(vapply(batch, `[[`, "", "status") == "ok"), 0.9)
  for (i in c(1, 17, 50)) {
    one <- suppressWarnings(predict(poor, xs[i, ], n_samples = 300, seed = 9, n_eff = 600))
    expect_identical(one$theta, batch[[i]]$theta)
    expect_identical(one$weights, batch[[i]]$weights)
    expect_identical(one$rounds, batch[[i]]$rounds)
  }
  # and the order of the observations does not matter
  rev_batch <- suppressWarnings(predict(poor, xs[50:1, ], n_samples = 300, seed = 9, n_eff = 600))
  expect_identical(rev_batch[[1]]$theta, batch[[50]]$theta)
})

test_that("escalated draws respect a bounded prior, for several observations at once", {
  eng <- fit(nbi_engine(function(theta) rep(theta[["p"]], 4),
                        nbi_prior(p = prior_uniform(0, 1)),
                        flow = flow_maf(blocks = 2, hidden = 8, mixture = 2), noise = 0.3),
             n_sims = 300, n_epochs = 3, seed = 1, verbose = FALSE)
  xs <- rbind(rep(0.05, 4), rep(0.9, 4))
  posts <- suppressWarnings(predict(eng, xs, n_samples = 1000, seed = 4, n_eff = 1500))
  for (i in 1:2) {
    p <- posts[[i]]
    expect_true(all(p$theta >= 0 & p$theta <= 1))
    # posterior of p under a flat prior on [0, 1]: N(mean(x), 0.3^2 / 4) truncated
    g <- function(t) stats::dnorm(t, mean(xs[i, ]), 0.15)
    z <- stats::integrate(g, 0, 1)$value
    m_true <- stats::integrate(function(t) t * g(t), 0, 1)$value / z
    expect_lt(abs(sum(p$weights * p$theta[, 1]) - m_true), 3 * 0.15 / sqrt(p$n_eff))
    # the evidence of the truncated problem: the likelihood integrated over [0, 1]
    lz <- log(stats::integrate(function(t) vapply(t, function(u)
      exp(sum(stats::dnorm(xs[i, ], u, 0.3, log = TRUE))), 0), 0, 1)$value)
    expect_lt(abs(p$log_evidence - lz), 3 * p$log_evidence_se)
  }
})

test_that("predict's new arguments are checked before any work", {
  expect_error(predict(poor, x_obs, adapt = -1), "`adapt` must be a single whole number >= 0")
  expect_error(predict(poor, x_obs, adapt = 1.5), "`adapt`")
  expect_error(predict(poor, x_obs, n_eff = 0), "`n_eff`")
  expect_error(predict(poor, x_obs, n_eff = "a"), "`n_eff`")
  expect_error(predict(poor, x_obs, n_samples = 100, max_sims = 50), "`max_sims`")
  expect_error(predict(poor, x_obs, ood_level = 2), "`ood_level`")
  expect_error(predict(poor, x_obs, n_eff = 100, importance = FALSE), "needs importance weights")
  expect_error(predict(poor, x_obs, nsamples = 100), "unknown argument to predict\\(\\): `nsamples`")
  expect_error(predict(poor, x_obs, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), "unknown argument")
})
