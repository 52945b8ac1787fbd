# Regression tests for defects found by trying bad input (issue "One source of truth"):
# each would pass on the fixed code and failed before it.

test_that("one malformed first output does not make every correct simulation fail", {
  # the first parameter set gives 5 values, every other one 4: the reference shape is the
  # most common one (it was the first success's, which rejected all 9 correct outputs)
  sim <- function(theta) if (theta[["a"]] < 0.05) rep(1, 5) else rep(theta[["a"]], 4)
  eng <- nbi_engine(sim, nbi_prior(a = prior_uniform(0, 1)))
  theta <- cbind(a = c(0.01, seq(0.1, 0.9, length.out = 9)))
  expect_warning(s <- nbi_simulate(eng, theta = theta, chunk_size = 10),
                 "failed for 1 of 10.*returned 5 values, expected 4")
  expect_equal(s$kept, 2:10)
  expect_equal(dim(s$x), c(9L, 4L))
  # the same for a vectorised simulator whose chunks disagree: chunks of 5, 5 and 2 rows,
  # the chunk of 2 (run last here, but it could be first on another plan) malformed
  vsim <- function(theta) if (nrow(theta) == 2) matrix(1, 2, 5) else matrix(theta[, 1], nrow(theta), 4)
  veng <- nbi_engine(vsim, nbi_prior(a = prior_uniform(0, 1)), vectorized = TRUE)
  expect_warning(s2 <- nbi_simulate(veng, theta = cbind(a = seq(0.05, 0.6, by = 0.05)), chunk_size = 5),
                 "failed for 2 of 12.*returned 5 values, expected 4")
  expect_equal(s2$kept, 1:10)
})

test_that("a numeric noise of the wrong length is an error, not recycled", {
  eng <- nbi_engine(function(theta) rep(theta[["a"]], 5), nbi_prior(a = prior_uniform(0, 1)),
                    noise = c(0.1, 0.2), flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  expect_error(fit(eng, n_sims = 20, n_epochs = 1, seed = 1, verbose = FALSE),
               "`noise` has 2 sds but the simulations have 5 values")
  ok <- nbi_engine(function(theta) rep(theta[["a"]], 5), nbi_prior(a = prior_uniform(0, 1)),
                   noise = rep(0.1, 5), flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  ok <- fit(ok, n_sims = 20, n_epochs = 1, seed = 1, verbose = FALSE)
  expect_error(predict(ok, rep(0.5, 5), x_err = c(0.1, 0.2), n_samples = 10),
               "`x_err` has 2 values but the observation has 5")
})

test_that("an observation in the simulator's data frame layout is taken by predict()", {
  sim <- function(theta) data.frame(mag = theta[["a"]] + c(0, 0.1, 0.2), err = c(1, 1, 1))
  eng <- nbi_engine(sim, nbi_prior(a = prior_uniform(0, 1)), noise = 0.1,
                    flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  eng <- fit(eng, n_sims = 50, n_epochs = 1, seed = 1, verbose = FALSE)
  obs <- sim(c(a = 0.4))
  p_df <- predict(eng, obs, n_samples = 20, importance = FALSE, seed = 2)
  expect_s3_class(p_df, "nbi_posterior")
  p_vec <- predict(eng, as.vector(t(as.matrix(obs))), n_samples = 20, importance = FALSE, seed = 2)
  expect_identical(p_df$theta, p_vec$theta)
})

test_that("summary() of a posterior whose weights are all zero has no numbers", {
  post <- nbi:::new_posterior(matrix(c(1, 2, 3), 3, dimnames = list(NULL, "a")), numeric(3), 0,
                              log_weights = rep(0, 3))
  post$weights <- rep(0, 3)
  s <- summary(post)
  expect_true(all(is.na(s$mean) & is.na(s$sd) & is.na(s$q50)))
})

test_that("an SNPE-IS history says which round's surrogate was kept after a revert", {
  sim <- function(theta) rep(theta[["mu"]], 3)
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), noise = 0.5,
                    flow = flow_maf(blocks = 2, hidden = 8, mixture = 1))
  f <- fit(eng, n_sims = 100, n_rounds = 5, n_epochs = 3, x_obs = c(0.3, 0.5, 0.4), seed = 1,
           verbose = FALSE, n_reuse = 1)
  r <- f$history$rounds
  expect_equal(sum(r$kept), 1)
  n <- nrow(r)
  reverted <- n >= 3 && r$n_eff[n] < r$n_eff[n - 1]
  expect_true(reverted)   # this seed reverts at its third round
  expect_equal(which(r$kept), n - 1)
  # an amortised fit keeps its only round
  a <- fit(eng, n_sims = 50, n_epochs = 1, seed = 1, verbose = FALSE)
  expect_true(a$history$rounds$kept)
})

test_that("nbi_log_prob matches parameter columns by name, and refuses names that differ", {
  eng <- nbi_engine(function(theta) c(theta[["a"]], theta[["b"]]) + stats::rnorm(2, sd = 0.1),
                    nbi_prior(a = prior_normal(0, 1), b = prior_normal(0, 1)),
                    flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  eng <- fit(eng, n_sims = 50, n_epochs = 1, seed = 1, verbose = FALSE)
  th <- cbind(a = c(0.1, 0.5), b = c(-1, 2))
  lp <- nbi_log_prob(eng, th, c(0.1, 0.2))
  expect_equal(nbi_log_prob(eng, th[, c("b", "a")], c(0.1, 0.2)), lp)
  expect_error(nbi_log_prob(eng, cbind(a = 1, c = 2), c(0.1, 0.2)),
               "`theta` has columns \\(a, c\\) that do not match the prior's parameters \\(a, b\\)")
})

test_that("unknown arguments to fit() and predict() are errors that name them", {
  eng <- nbi_engine(function(theta) rep(theta[["a"]], 2), nbi_prior(a = prior_uniform(0, 1)),
                    noise = 0.1, flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  expect_error(fit(eng, n_sims = 20, loss = "apt"), "unknown argument to fit\\(\\): `loss`")
  eng <- fit(eng, n_sims = 20, n_epochs = 1, seed = 1, verbose = FALSE, clip = 1, average = 0.99)
  expect_error(predict(eng, c(0.5, 0.5), tempr = 2), "unknown argument to predict\\(\\): `tempr`")
})

test_that("training epochs and predict's observations report progress (progressr)", {
  old <- options(progressr.enable = TRUE)
  on.exit(options(old))
  eng <- nbi_engine(function(theta) rep(theta[["a"]], 2), nbi_prior(a = prior_uniform(0, 1)),
                    noise = 0.1, flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  msgs <- character(0)
  withCallingHandlers(eng <- fit(eng, n_sims = 50, n_epochs = 4, seed = 1, verbose = FALSE),
                      progression = function(p) msgs <<- c(msgs, conditionMessage(p)))
  expect_equal(sum(grepl("^round 1, epoch [1-4]: validation loss", msgs)), 4)
  n <- 0
  withCallingHandlers(p <- predict(eng, rbind(c(0.2, 0.2), c(0.8, 0.8)), n_samples = 50, seed = 1),
                      progression = function(p) n <<- n + 1)
  expect_gt(n, 2)
})
