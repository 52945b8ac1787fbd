# Resampling, posterior-package conversion and plot methods of posteriors and engines.

# A posterior of n N(0, 1) draws per parameter; with `tilt`, log weights tilt * theta[, 1],
# whose weighted (exponentially tilted) distribution is N(tilt, 1) in the first parameter.
toy_posterior <- function(n = 2000, d = 2, tilt = NULL, seed = 1) {
  theta <- with_seed(seed, matrix(stats::rnorm(n * d), n, d))
  colnames(theta) <- c("alpha", "beta", "gamma", "delta")[seq_len(d)]
  lw <- if (is.null(tilt)) NULL else tilt * theta[, 1]
  new_posterior(theta, rowSums(stats::dnorm(theta, log = TRUE)), x_obs = c(0.1, 0.2),
                log_weights = lw)
}

draw_to_png <- function(code) {
  f <- tempfile(fileext = ".png")
  grDevices::png(f, width = 600, height = 600)
  on.exit({
    grDevices::dev.off()
    unlink(f)
  })
  force(code)
}

test_that("systematic resampling of known weights gives the exact counts", {
  theta <- matrix(1:4, ncol = 1, dimnames = list(NULL, "a"))
  post <- new_posterior(theta, numeric(4), x_obs = 0, log_weights = log(c(0.5, 0.25, 0.25, 0)))
  for (s in 1:20) {
    r <- nbi_resample(post, n = 4, seed = s)
    expect_equal(as.vector(table(factor(r$theta[, 1], levels = 1:4))), c(2, 1, 1, 0))
  }
  # unnormalised log weights give the same answer; counts scale with n
  post$log_weights <- log(c(0.5, 0.25, 0.25, 0)) + 7
  r <- nbi_resample(post, n = 400, seed = 3)
  expect_equal(as.vector(table(factor(r$theta[, 1], levels = 1:4))), c(200, 100, 100, 0))
})

test_that("resampled draws reproduce the weighted mean and are unweighted", {
  post <- toy_posterior(n = 20000, d = 2, tilt = 1)
  wmean <- colSums(post$weights * post$theta)
  expect_lt(abs(wmean[["alpha"]] - 1), 0.05)
  r <- nbi_resample(post, n = 20000, seed = 4)
  expect_s3_class(r, "nbi_posterior")
  expect_equal(dim(r$theta), c(20000L, 2L))
  expect_equal(colnames(r$theta), c("alpha", "beta"))
  expect_null(r$weights)
  expect_null(r$log_weights)
  expect_true(is.na(r$n_eff))
  expect_length(r$log_q, 20000)
  # rows stay together: log_q follows its theta row
  expect_equal(r$log_q, rowSums(stats::dnorm(r$theta, log = TRUE)))
  # systematic resampling: the mean matches the weighted one to well below Monte Carlo error
  expect_lt(max(abs(colMeans(r$theta) - wmean)), 0.01)
  expect_lt(abs(mean(r$theta[, "alpha"]) - 1), 0.05)
  expect_lt(abs(stats::sd(r$theta[, "alpha"]) - 1), 0.05)
  # a different size
  expect_equal(nrow(nbi_resample(post, n = 500, seed = 1)$theta), 500L)
})

test_that("nbi_resample is reproducible with a seed and leaves the session RNG alone", {
  post <- toy_posterior(n = 300, tilt = 0.7)
  set.seed(42)
  before <- .Random.seed
  a <- nbi_resample(post, n = 100, seed = 9)
  expect_identical(.Random.seed, before)
  b <- nbi_resample(post, n = 100, seed = 9)
  expect_identical(a$theta, b$theta)
  expect_false(identical(a$theta, nbi_resample(post, n = 100, seed = 10)$theta))
  set.seed(5)
  c1 <- nbi_resample(post, n = 100)
  set.seed(5)
  c2 <- nbi_resample(post, n = 100)
  expect_identical(c1$theta, c2$theta)
})

test_that("nbi_resample of an unweighted posterior", {
  post <- toy_posterior(n = 200, tilt = NULL)
  expect_identical(nbi_resample(post), post)
  r <- nbi_resample(post, n = 1000, seed = 2)
  expect_equal(nrow(r$theta), 1000L)
  expect_null(r$weights)
  expect_true(all(r$theta[, 1] %in% post$theta[, 1]))
  # uniform with replacement: every draw used roughly 5 times
  expect_gt(length(unique(r$theta[, 1])), 150)
  expect_error(nbi_resample(post, n = 0), "`n`")
  expect_error(nbi_resample(list(theta = post$theta)), "nbi_posterior")
})

test_that("as_draws_df carries the variables and the importance weights", {
  post <- toy_posterior(n = 4000, d = 3, tilt = 1)
  dr <- as_draws_df(post)
  expect_s3_class(dr, "draws_df")
  expect_equal(posterior::variables(dr), c("alpha", "beta", "gamma"))
  expect_equal(posterior::ndraws(dr), 4000L)
  expect_true(".log_weight" %in% names(dr))
  expect_equal(dr$alpha, unname(post$theta[, "alpha"]))
  # the weights are the posterior's, normalised
  expect_equal(stats::weights(dr), post$weights, tolerance = 1e-10)
  expect_equal(stats::weights(dr, log = TRUE, normalize = FALSE), log(post$weights),
               tolerance = 1e-10)
  wmean <- colSums(post$weights * post$theta)
  expect_equal(colSums(stats::weights(dr) * as.matrix(as.data.frame(dr)[, 1:3])), wmean,
               tolerance = 1e-10)
  # resampling through posterior agrees with the weighted mean
  rs <- posterior::resample_draws(dr, method = "deterministic")
  expect_lt(abs(mean(rs$alpha) - wmean[["alpha"]]), 0.02)
  expect_lt(abs(mean(rs$alpha) - 1), 0.1)
  # summarise_draws of the resampled draws finds the tilted mean
  s <- posterior::summarise_draws(rs, "mean")
  expect_lt(abs(s$mean[s$variable == "alpha"] - 1), 0.1)

  dm <- as_draws_matrix(post)
  expect_s3_class(dm, "draws_matrix")
  expect_equal(posterior::variables(dm), c("alpha", "beta", "gamma"))
  expect_equal(stats::weights(dm), post$weights, tolerance = 1e-10)
})

test_that("as_draws_df of an unweighted posterior has no weight column", {
  post <- toy_posterior(n = 500, d = 2)
  dr <- as_draws_df(post)
  expect_false(".log_weight" %in% names(dr))
  expect_null(stats::weights(dr))
  expect_equal(posterior::variables(dr), c("alpha", "beta"))
  s <- posterior::summarise_draws(dr, "mean")
  expect_equal(as.numeric(s$mean), unname(colMeans(post$theta)))
  dm <- as_draws_matrix(post)
  expect_equal(unclass(dm)[, "beta"], unname(post$theta[, "beta"]), ignore_attr = TRUE)
  expect_false(".log_weight" %in% colnames(dm))
  # unnamed columns get names
  theta <- post$theta
  colnames(theta) <- NULL
  p2 <- new_posterior(theta, post$log_q, post$x_obs)
  expect_equal(posterior::variables(as_draws_df(p2)), c("theta[1]", "theta[2]"))
})

test_that("corner plots draw for 1 to 3 parameters, weighted or not, with a truth", {
  old_mfrow <- graphics::par("mfrow")
  for (d in 1:3) {
    for (tilt in list(NULL, 0.5)) {
      post <- toy_posterior(n = 1500, d = d, tilt = tilt)
      draw_to_png({
        expect_invisible(plot(post))
        res <- withVisible(plot(post, truth = seq_len(d) / 4, bins = 25,
                                levels = c(0.5, 0.9, 0.99), col = "darkgreen"))
        expect_false(res$visible)
        expect_identical(res$value, post)
        expect_silent(plot(post, truth = c(alpha = 0.3)))
        expect_equal(graphics::par("mfrow"), c(1L, 1L))
      })
    }
  }
  post <- toy_posterior(n = 500, d = 2)
  draw_to_png({
    expect_error(plot(post, truth = c(1, 2, 3)), "2 parameter")
    expect_error(plot(post, truth = c(zeta = 1)), "unknown parameter")
    expect_error(plot(post, levels = 1.2), "levels")
    expect_error(plot(post, bins = 1), "bins")
  })
  expect_equal(graphics::par("mfrow"), old_mfrow)
})

test_that("HPD contour thresholds enclose the requested mass", {
  z <- outer(stats::dnorm(seq(-4, 4, length.out = 81)), stats::dnorm(seq(-4, 4, length.out = 81)))
  th <- hpd_thresholds(z, c(0.68, 0.95))
  expect_true(th[1] > th[2])
  mass <- vapply(th, function(t) sum(z[z >= t]) / sum(z), numeric(1))
  expect_equal(mass, c(0.68, 0.95), tolerance = 0.01)
  # for a standard bivariate normal the 68% HPD region is the circle r^2 = -2 log(0.32)
  expect_equal(th[1] / max(z), 0.32, tolerance = 0.03)
})

test_that("plot.nbi_engine draws the history of a fitted engine and refuses an unfitted one", {
  sim <- function(theta) theta[["mu"]] + stats::rnorm(3, sd = 0.5)
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
                    flow = flow_maf(blocks = 2, hidden = 8, mixture = 2))
  expect_error(plot(eng), "not fitted")
  fitted <- fit(eng, n_sims = 200, n_epochs = 3, seed = 1, verbose = FALSE)
  draw_to_png({
    expect_invisible(plot(fitted))
    # several rounds with effective sample sizes: second panel
    two <- fitted
    ep <- two$history$epochs
    two$history$epochs <- rbind(ep, transform(ep, round = 2L))
    two$history$rounds <- rbind(two$history$rounds,
                                transform(two$history$rounds, round = 2L, n_eff = 150,
                                          efficiency = 0.75))
    expect_invisible(plot(two))
    expect_equal(graphics::par("mfrow"), c(1L, 1L))
  })
  expect_error(plot.nbi_engine(list()), "nbi_engine")
})
