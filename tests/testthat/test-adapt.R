# Adaptive importance sampling (predict(..., adapt = )): the Student-t mixture's density,
# sampler and EM fit, and the adapted posterior of a conjugate Gaussian model against its
# analytic posterior and evidence, from a surrogate too poor for plain importance sampling.

test_that("the Student-t mixture's density integrates to 1 and matches its draws (1-D)", {
  g <- list(share = c(0.3, 0.7), mu = matrix(c(-2, 1.5), 2), df = 5,
            R = list(matrix(0.5), matrix(1.2)))
  dens <- function(z) exp(nbi:::tmix_log_density(g, matrix(z)))
  expect_equal(stats::integrate(dens, -Inf, Inf)$value, 1, tolerance = 1e-6)
  set.seed(1)
  z <- nbi:::tmix_draw(g, 40000)
  edges <- c(-Inf, seq(-4, 5, by = 0.75), Inf)
  p <- vapply(seq_len(length(edges) - 1), function(i)
    stats::integrate(dens, edges[i], edges[i + 1])$value, numeric(1))
  obs <- tabulate(findInterval(z, edges), length(edges) - 1)
  chi <- sum((obs - 40000 * p)^2 / (40000 * p))
  expect_lt(chi, stats::qchisq(0.999, length(p) - 1))
  # the test has teeth: the draws of another mixture fail it
  g2 <- g; g2$share <- c(0.5, 0.5)
  obs2 <- tabulate(findInterval(nbi:::tmix_draw(g2, 40000), edges), length(edges) - 1)
  expect_gt(sum((obs2 - 40000 * p)^2 / (40000 * p)), stats::qchisq(0.999, length(p) - 1))
})

test_that("the 2-D mixture density is normalised and its draws have its moments", {
  R1 <- chol(matrix(c(1, 0.6, 0.6, 0.8), 2))
  g <- list(share = c(0.4, 0.6), mu = rbind(c(-1, 0), c(2, 1)), df = 5,
            R = list(R1, diag(c(0.5, 0.7))))
  h <- 0.05
  grid <- as.matrix(expand.grid(seq(-40, 40, by = h), seq(-40, 40, by = h)))
  # the t tails beyond |z| = 40 hold about 1e-6 of the mass
  expect_equal(sum(exp(nbi:::tmix_log_density(g, grid))) * h^2, 1, tolerance = 2e-4)
  set.seed(2)
  z <- nbi:::tmix_draw(g, 1e5)
  expect_equal(colMeans(z), colSums(g$share * g$mu), tolerance = 0.03)
  # scale matrix S = R'R; a t_5 component's covariance is S * 5 / 3
  cov_k <- lapply(g$R, function(R) crossprod(R) * 5 / 3)
  m <- colSums(g$share * g$mu)
  within <- g$share[1] * cov_k[[1]] + g$share[2] * cov_k[[2]]
  between <- Reduce(`+`, lapply(1:2, function(k) g$share[k] * tcrossprod(g$mu[k, ] - m)))
  expect_equal(stats::cov(z), within + between, tolerance = 0.05)
})

test_that("the EM fit recovers a two-component mixture, and weights re-target it", {
  set.seed(3)
  n <- 20000
  k <- stats::rbinom(n, 1, 0.3)
  z <- cbind(ifelse(k == 1, -3, 2), ifelse(k == 1, 1, -1)) + matrix(stats::rnorm(2 * n, sd = 0.5), n)
  s <- nbi:::adapt_settings
  s$components <- 2L; s$inflate <- 1; s$shrink <- 0; s$floor <- 0
  g <- nbi:::tmix_fit(z, rep(1, n), diag(2), s)
  o <- order(g$mu[, 1])
  expect_equal(g$share[o], c(0.3, 0.7), tolerance = 0.03)
  expect_equal(unname(g$mu[o, ]), rbind(c(-3, 1), c(2, -1)), tolerance = 0.03)
  expect_equal(crossprod(g$R[[o[1]]]), diag(0.25, 2), tolerance = 0.05)
  # weights p / q turn draws of q = N(0, 2^2) into a fit of p = N(1, 0.6^2)
  u <- matrix(stats::rnorm(2 * n, sd = 2), n)
  lw <- rowSums(stats::dnorm(u, 1, 0.6, log = TRUE) - stats::dnorm(u, 0, 2, log = TRUE))
  s$components <- 1L
  g1 <- nbi:::tmix_fit(u, exp(lw - max(lw)), diag(2), s)
  expect_equal(as.vector(g1$mu), c(1, 1), tolerance = 0.05)
  expect_equal(crossprod(g1$R[[1]]), diag(0.36, 2), tolerance = 0.1)
  # few effective draws give a component pulled towards the shrinkage target, not a point
  s$shrink <- 5
  g0 <- nbi:::tmix_fit(u[1:3, , drop = FALSE], c(1, 1e-3, 1e-3), diag(2), s)
  expect_gt(min(diag(crossprod(g0$R[[1]]))), 0.5)
})

# Conjugate model: theta ~ N(0, I_2), x = A theta + N(0, 0.5^2 I_3); a surrogate from 3
# epochs on 300 simulations is far from the posterior.
A <- matrix(c(1, 0.2, 1, 0.5, 1, -1), 3, 2)
s_noise <- 0.5
x_obs <- c(0.9, -0.3, 1.6)
S <- solve(diag(2) + crossprod(A) / s_noise^2)
mu <- as.vector(S %*% t(A) %*% x_obs / s_noise^2)
poor <- fit(nbi_engine(function(theta) as.vector(A %*% theta),
                       nbi_prior(a = prior_normal(0, 1), b = prior_normal(0, 1)),
                       flow = flow_maf(blocks = 2, hidden = 16, mixture = 2), noise = s_noise),
            n_sims = 300, n_epochs = 3, seed = 1, verbose = FALSE)

test_that("adaptive importance sampling raises n_eff and stays exact", {
  plain <- predict(poor, x_obs, n_samples = 4000, seed = 2)
  post <- predict(poor, x_obs, n_samples = 4000, seed = 2, adapt = 3)
  expect_length(post$adapt$n_eff, 4)
  expect_equal(post$adapt$n_eff[1], plain$n_eff)
  expect_equal(post$n_eff, max(post$adapt$n_eff))
  expect_gt(post$n_eff, 2 * plain$n_eff)
  w <- post$weights
  expect_equal(sum(w), 1)
  m <- colSums(w * post$theta)
  expect_true(all(abs(m - mu) < 4 * sqrt(diag(S) / post$n_eff) + 1e-3))
  sdw <- sqrt(colSums(w * t(t(post$theta) - m)^2))
  expect_true(all(abs(sdw / sqrt(diag(S)) - 1) < 0.06))
  Sx <- A %*% t(A) + s_noise^2 * diag(3)
  logz <- -0.5 * (drop(t(x_obs) %*% solve(Sx) %*% x_obs) + drop(determinant(2 * pi * Sx)$modulus))
  expect_lt(abs(post$log_evidence - logz), 4 * post$log_evidence_se + 0.01)
  expect_equal(nrow(post$theta), 4000)
  expect_output(print(post), sprintf("round %d of 3 kept", post$adapt$kept))
  expect_identical(colnames(post$theta), c("a", "b"))
  # reproducible under a seed
  again <- predict(poor, x_obs, n_samples = 4000, seed = 2, adapt = 3)
  expect_identical(again$theta, post$theta)
  expect_identical(again$log_weights, post$log_weights)
})

test_that("adapted draws respect a bounded prior, for several observations at once", {
  eng <- fit(nbi_engine(function(theta) rep(theta[["p"]], 4),
                        nbi_prior(p = prior_uniform(0, 1)),
                        flow = flow_maf(blocks = 2, hidden = 8, mixture = 2), noise = 0.3),
             n_sims = 300, n_epochs = 3, seed = 1, verbose = FALSE)
  xs <- rbind(rep(0.05, 4), rep(0.9, 4))
  posts <- predict(eng, xs, n_samples = 2000, seed = 4, adapt = 2)
  expect_s3_class(posts, "nbi_posterior_list")
  for (i in 1:2) {
    p <- posts[[i]]
    expect_true(all(p$theta >= 0 & p$theta <= 1))
    # posterior of p under a flat prior on [0, 1]: N(mean(x), 0.3^2 / 4) truncated
    g <- function(t) stats::dnorm(t, mean(xs[i, ]), 0.15)
    z <- stats::integrate(g, 0, 1)$value
    m_true <- stats::integrate(function(t) t * g(t), 0, 1)$value / z
    expect_lt(abs(sum(p$weights * p$theta[, 1]) - m_true), 4 * 0.15 / sqrt(p$n_eff) + 1e-3)
  }
})

test_that("adapt is checked before any work", {
  expect_error(predict(poor, x_obs, adapt = -1), "`adapt` must be a whole number >= 0")
  expect_error(predict(poor, x_obs, adapt = 1.5), "`adapt`")
  expect_error(predict(poor, x_obs, adapt = "a"), "`adapt`")
})
