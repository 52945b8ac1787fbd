# Amortised NPE on a linear Gaussian model, whose posterior is known exactly:
# theta ~ N(0, I2), x = A theta + N(0, s^2 I3)  =>  Sigma = (I + A'A/s^2)^-1, mu = Sigma A'x/s^2.

A <- matrix(c(1, 0.2, 1, 0.5, 1, -1), 3, 2)
s_noise <- 0.5
lin_prior <- function() nbi_prior(a = prior_normal(0, 1), b = prior_normal(0, 1))
lin_sim <- function(theta) as.vector(A %*% theta)
analytic <- function(x) {
  S <- solve(diag(2) + crossprod(A) / s_noise^2)
  list(mean = as.vector(S %*% t(A) %*% x / s_noise^2), sd = sqrt(diag(S)))
}

fit_linear <- function(noise = s_noise, threads = 1, seed = 1, featurizer = featurizer_identity(),
                       n_sims = 4000, n_epochs = 30) {
  eng <- nbi_engine(lin_sim, lin_prior(), featurizer = featurizer,
                    flow = flow_maf(blocks = 3, hidden = 32, mixture = 2), noise = noise)
  fit(eng, n_sims = n_sims, n_epochs = n_epochs, batch_size = 64, lr = 2e-3, seed = seed,
      threads = threads, verbose = FALSE)
}

eng_lin <- fit_linear()
x_obs <- c(0.9, -0.3, 1.6)

test_that("amortised NPE recovers the analytic posterior mean and sd", {
  post <- predict(eng_lin, x_obs, n_samples = 20000, seed = 3, importance = FALSE)
  ref <- analytic(x_obs)
  expect_s3_class(post, "nbi_posterior")
  expect_null(post$weights)
  expect_equal(colnames(post$theta), c("a", "b"))
  expect_lt(max(abs(colMeans(post$theta) - ref$mean) / ref$sd), 0.15)
  expect_lt(max(abs(apply(post$theta, 2, sd) / ref$sd - 1)), 0.15)
  s <- summary(post)
  expect_equal(s$mean, unname(colMeans(post$theta)))
  expect_output(print(post), "surrogate draws")
})

test_that("nbi_log_prob is a normalised density in the parameters' own units", {
  ref <- analytic(x_obs)
  g1 <- seq(ref$mean[1] - 6 * ref$sd[1], ref$mean[1] + 6 * ref$sd[1], length.out = 121)
  g2 <- seq(ref$mean[2] - 6 * ref$sd[2], ref$mean[2] + 6 * ref$sd[2], length.out = 121)
  G <- as.matrix(expand.grid(a = g1, b = g2))
  lq <- nbi_log_prob(eng_lin, G, x_obs)
  expect_equal(sum(exp(lq)) * diff(g1[1:2]) * diff(g2[1:2]), 1, tolerance = 0.02)
  post <- predict(eng_lin, x_obs, n_samples = 50, seed = 4)
  expect_equal(post$log_q, nbi_log_prob(eng_lin, post$theta, x_obs), tolerance = 1e-9)
})

test_that("a noise closure and an MLP featurizer also recover the posterior", {
  noise_fn <- function(x, theta) x + matrix(rnorm(length(x), sd = s_noise), nrow(x))
  eng <- fit_linear(noise = noise_fn, featurizer = featurizer_mlp(c(32, 32), 8), n_epochs = 40)
  post <- predict(eng, x_obs, n_samples = 20000, seed = 3)
  ref <- analytic(x_obs)
  expect_lt(max(abs(colMeans(post$theta) - ref$mean) / ref$sd), 0.25)
  expect_lt(max(abs(apply(post$theta, 2, sd) / ref$sd - 1)), 0.25)
  expect_gt(nrow(eng$history$epochs), 1)
})

test_that("many observations are sampled together and agree with one-by-one calls", {
  xs <- rbind(x_obs, c(-1, 0, 0.5), c(2, 1, 0))
  pl <- predict(eng_lin, xs, n_samples = 1000, seed = 5)
  expect_s3_class(pl, "nbi_posterior_list")
  expect_length(pl, 3)
  for (i in 1:3) {
    ref <- analytic(xs[i, ])
    expect_lt(max(abs(colMeans(pl[[i]]$theta) - ref$mean) / ref$sd), 0.3)
  }
  expect_output(print(pl), "3 observations")
})

test_that("saveRDS/readRDS round trips give identical predictions", {
  f <- tempfile(fileext = ".rds")
  saveRDS(eng_lin, f)
  eng2 <- readRDS(f)
  expect_identical(predict(eng_lin, x_obs, n_samples = 500, seed = 9)$theta,
                   predict(eng2, x_obs, n_samples = 500, seed = 9)$theta)
  set.seed(11); a <- predict(eng_lin, x_obs, n_samples = 500)$theta
  set.seed(11); b <- predict(eng2, x_obs, n_samples = 500)$theta
  expect_identical(a, b)
})

test_that("fits and predictions are identical for 1 and 2 threads", {
  e1 <- fit_linear(threads = 1, n_sims = 600, n_epochs = 3)
  e2 <- fit_linear(threads = 2, n_sims = 600, n_epochs = 3)
  expect_identical(e1$model$params, e2$model$params)
  expect_identical(predict(e1, x_obs, n_samples = 3000, seed = 2, threads = 1)$theta,
                   predict(e1, x_obs, n_samples = 3000, seed = 2, threads = 2)$theta)
})

test_that("training stops early and restores the best epoch", {
  eng <- fit_linear(n_sims = 400, n_epochs = 200)
  h <- eng$history
  expect_lt(nrow(h$epochs), 200)
  best <- h$rounds$best_epoch
  expect_equal(min(h$epochs$valid_loss), h$epochs$valid_loss[best])
  expect_true(all(diff(h$epochs$lr) <= 0))
})

test_that("errors name the argument", {
  expect_error(nbi_engine(lin_sim, prior_normal(0, 1)), "named")
  expect_error(nbi_engine(lin_sim, list(prior_normal(0, 1))), "named")
  expect_error(nbi_engine("sim", lin_prior()), "simulator")
  eng <- nbi_engine(lin_sim, lin_prior())
  expect_error(fit(eng, n_sims = 1), "n_sims")
  expect_error(fit(eng), "n_sims")
  expect_error(predict(eng, x_obs), "not fitted")
  expect_error(predict(eng_lin, c(1, 2)), "x_obs.*length 3")
  expect_error(predict(eng_lin, matrix(1, 2, 4)), "x_obs")
  expect_error(predict(eng_lin, x_obs, n_samples = 0), "n_samples")
  expect_error(fit(eng, n_sims = 10, lr = -1), "lr")
  expect_error(fit(eng, n_sims = 10, average = 1), "average")
  na_sim <- nbi_engine(function(theta) c(NA, 1, 2), lin_prior())
  expect_error(fit(na_sim, n_sims = 10, verbose = FALSE), "simulator")
  rand_len <- nbi_engine(function(theta) rnorm(sample(2:6, 1)), lin_prior())
  expect_error(fit(rand_len, n_sims = 40, seed = 1, verbose = FALSE), "simulator")
  empty <- nbi_engine(function(theta) numeric(0), lin_prior())
  expect_error(fit(empty, n_sims = 10, verbose = FALSE), "simulator")
  len_sim <- nbi_engine(function(theta) if (theta[["a"]] > 1.5) 1:2 else c(1, 2, theta[["a"]]),
                        lin_prior())
  expect_error(suppressWarnings(fit(len_sim, n_sims = 40, n_epochs = 1, seed = 1, verbose = FALSE)), NA)
  expect_warning(fit(len_sim, n_sims = 40, n_epochs = 1, seed = 1, verbose = FALSE), "failed")
  expect_error(nbi_engine(lin_sim, lin_prior(), noise = -1), "noise")
  expect_error(fit(eng, theta = matrix(0, 5, 2)), "both")
})

test_that("with two averages, each epoch validates the better one", {
  sim <- function(theta) theta[["mu"]] + stats::rnorm(2, sd = 0.5)
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
                    flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
  run <- function(average) fit(eng, n_sims = 600, n_epochs = 12, batch_size = 32, patience = 50,
                               seed = 3, average = average, verbose = FALSE)
  both <- run(c(0.999, 0.9))
  long <- run(0.999)
  short <- run(0.9)
  # the averages do not steer the iterates: the same path, so the pair's validation loss is
  # the smaller of the two single-average fits' in every epoch
  v <- function(e) e$history$epochs$valid_loss
  expect_equal(v(both), pmin(v(long), v(short)), tolerance = 1e-12)
  expect_true(any(v(short) < v(long)))  # so the pair is not the long average alone
  best <- which.min(v(both))
  kept <- if (v(long)[best] <= v(short)[best]) long else short
  expect_equal(both$model$params, kept$model$params, tolerance = 1e-12)
  expect_error(fit(eng, n_sims = 10, average = c(0.9, 0.99, 0.999)), "average")
  expect_error(fit(eng, n_sims = 10, average = c(0.9, NA)), "average")
})

test_that("iterate averaging brings the fit closer to the analytic posterior", {
  # two parameters, each measured twice with sd 0.7; the posterior is Gaussian with
  # precision 1 + 2 / 0.49 per parameter. KL(p || q) = E[log p - log q] over fresh pairs.
  sim <- function(theta) c(theta, theta) + stats::rnorm(4, sd = 0.7)
  prior <- nbi_prior(a = prior_normal(0, 1), b = prior_normal(0, 1))
  set.seed(5)
  th <- sample_prior(prior, 4000)
  xs <- t(apply(th, 1, sim))
  prec <- 1 + 2 / 0.49
  mu <- cbind(xs[, 1] + xs[, 3], xs[, 2] + xs[, 4]) / 0.49 / prec
  log_p <- rowSums(dnorm(th, mu, 1 / sqrt(prec), log = TRUE))
  kl <- function(average, seed) {
    eng <- nbi_engine(sim, prior, flow = flow_maf(blocks = 3, hidden = 32, mixture = 2))
    eng <- fit(eng, n_sims = 2000, n_epochs = 60, batch_size = 32, seed = seed,
               average = average, verbose = FALSE)
    mean(log_p - nbi_log_prob(eng, th, xs))
  }
  raw <- vapply(1:3, function(s) kl(0, s), numeric(1))
  avg <- vapply(1:3, function(s) kl(0.999, s), numeric(1))
  expect_lt(mean(avg), 0.85 * mean(raw))
  expect_lt(mean(avg), 0.03)
})
