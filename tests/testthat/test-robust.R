# Numerical robustness: extreme scales give finite answers or an error naming the cause.

test_that("huge observation values and a constant column give finite posteriors", {
  sim <- function(th) c(th[["a"]] * 1e30, 5, th[["b"]] + stats::rnorm(1, sd = 0.1))
  eng <- nbi_engine(sim, nbi_prior(a = prior_uniform(0, 1), b = prior_normal(0, 1)),
                    flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
  eng <- fit(eng, n_sims = 600, n_epochs = 10, seed = 1, verbose = FALSE)
  expect_true(all(is.finite(unlist(eng$model$x_sd))))
  expect_equal(eng$model$x_sd[2], 1)  # the constant column is only centred
  post <- predict(eng, c(0.5e30, 5, 0.2), n_samples = 500, seed = 2)
  expect_true(all(is.finite(post$theta)))
  # the scale 1e30 is learnt: draws of a concentrate near 0.5
  expect_lt(abs(stats::median(post$theta[, "a"]) - 0.5), 0.25)
})

test_that("tiny and huge prior ranges give draws inside the prior and finite weights", {
  sim <- function(th) c(th[["a"]] * 1e9, th[["b"]] * 1e-9)
  eng <- nbi_engine(sim, nbi_prior(a = prior_uniform(0, 1e-9), b = prior_uniform(-1e9, 1e9)),
                    flow = flow_maf(blocks = 2, hidden = 16, mixture = 2), noise = 0.05)
  eng <- fit(eng, n_sims = 1000, n_epochs = 15, seed = 1, verbose = FALSE)
  # a short fit: heavy-tailed weights (a Pareto-k warning) are expected and beside the point
  post <- suppressWarnings(predict(eng, c(0.5, 0.3), n_samples = 1000, seed = 3))
  expect_true(all(post$theta[, "a"] >= 0 & post$theta[, "a"] <= 1e-9))
  expect_true(all(abs(post$theta[, "b"]) <= 1e9))
  expect_true(all(is.finite(post$weights)))
  expect_gt(post$n_eff, 10)
  # both parameters are pinned by the data: a near 5e-10, b near 3e8
  w <- post$weights
  expect_lt(abs(sum(w * post$theta[, "a"]) - 5e-10), 1e-10)
  expect_lt(abs(sum(w * post$theta[, "b"]) - 3e8), 1e8)
  # an observation far outside the training simulations: an error that says so
  expect_error(suppressWarnings(predict(eng, c(1e6, -1e6), n_samples = 100, seed = 4)),
               "far outside the simulations")
})

test_that("log-weights far below the double range are normalised exactly", {
  n <- 50
  ll <- -1e6 - seq(0, 4.9, by = 0.1)  # exp(-1e6) underflows to 0 in double
  s <- nbi:::importance_stats(ll, rep(0, n), rep(0, n))
  w_ref <- exp(ll - max(ll)) / sum(exp(ll - max(ll)))
  expect_equal(s$weights, w_ref, tolerance = 1e-12)
  expect_equal(s$n_eff, 1 / sum(w_ref^2) - 1, tolerance = 1e-10)
  expect_true(is.finite(s$log_evidence))
  expect_equal(s$log_evidence, max(ll) + log(mean(exp(ll - max(ll)))), tolerance = 1e-10)
  # and far above it (huge log q deficits): still finite
  s2 <- nbi:::importance_stats(rep(0, n), rep(0, n), -1e6 - seq(0, 4.9, by = 0.1))
  expect_true(all(is.finite(s2$weights)))
  expect_equal(sum(s2$weights), 1)
})

test_that("fit(seed = ) and predict(seed = ) leave the session's RNG kind alone", {
  kind <- RNGkind()
  eng <- nbi_engine(function(th) th[["m"]] + c(0, 1), nbi_prior(m = prior_normal(0, 1)),
                    flow = flow_maf(blocks = 1, hidden = 8, mixture = 1), noise = 0.5)
  eng <- fit(eng, n_sims = 100, n_epochs = 2, seed = 1, verbose = FALSE)
  expect_identical(RNGkind(), kind)
  invisible(predict(eng, c(0.1, 1.2), n_samples = 50, seed = 2))
  expect_identical(RNGkind(), kind)
})
