# Calibration diagnostics on the linear Gaussian model, whose posterior is known exactly:
# theta ~ N(0, I2), x = A theta + N(0, s^2 I3). A well-trained engine must look calibrated;
# the same engine with its parameter scale shrunk threefold must look overconfident.

A <- matrix(c(1, 0.2, 1, 0.5, 1, -1), 3, 2)
s_noise <- 0.5
lin_prior <- function() nbi_prior(a = prior_normal(0, 1), b = prior_normal(0, 1))
lin_sim <- function(theta) as.vector(A %*% theta)

eng_cal <- fit(nbi_engine(lin_sim, lin_prior(),
                          flow = flow_maf(blocks = 3, hidden = 32, mixture = 2), noise = s_noise),
               n_sims = 4000, n_epochs = 30, batch_size = 64, lr = 2e-3, seed = 1,
               verbose = FALSE)

# Draws are z * theta_sd + theta_mean for z from the flow: dividing theta_sd by 3 gives
# draws (z * sd + mean - mean) / 3 + mean, a posterior three times too narrow (and pulled
# towards the prior mean), so a truth's standardised distance from it triples and the 90%
# central interval holds it in well under 60% of the test cases.
eng_over <- eng_cal
eng_over$model$theta_sd <- eng_cal$model$theta_sd / 3

n_test <- 200
cov_cal <- nbi_coverage(eng_cal, seed = 11)  # the defaults: 200 test cases x 1000 draws
sbc_cal <- nbi_sbc(eng_cal, seed = 12)

band99 <- function(level, n) stats::qbinom(c(0.005, 0.995), n, level) / n
cov_at <- function(cov, level) cov$coverage[which.min(abs(cov$levels - level)), ]

test_that("a well-trained engine has calibrated coverage", {
  expect_s3_class(cov_cal, "nbi_coverage")
  expect_equal(cov_cal$n_test, n_test)
  expect_equal(dim(cov_cal$quantiles), c(n_test, 2))
  expect_equal(colnames(cov_cal$coverage), c("a", "b"))
  expect_equal(nrow(cov_cal$coverage), length(cov_cal$levels))
  expect_true(all(cov_cal$quantiles >= 0 & cov_cal$quantiles <= 1))
  expect_true(all(diff(cov_cal$coverage[, "a"]) >= 0))
  expect_equal(unname(cov_cal$coverage[length(cov_cal$levels), ]), c(1, 1))
  for (level in c(0.5, 0.9)) {
    b <- band99(level, n_test)
    got <- cov_at(cov_cal, level)
    expect_true(all(got >= b[1] & got <= b[2]),
                info = sprintf("coverage at %.2f: %s, band [%.3f, %.3f]", level,
                               paste(format(got), collapse = ", "), b[1], b[2]))
  }
})

test_that("a well-trained engine has uniform SBC ranks", {
  expect_s3_class(sbc_cal, "nbi_sbc")
  expect_equal(dim(sbc_cal$ranks), c(n_test, 2))
  expect_equal(colnames(sbc_cal$ranks), c("a", "b"))
  expect_type(sbc_cal$ranks, "integer")
  expect_true(all(sbc_cal$ranks >= 0 & sbc_cal$ranks <= 1000))
  expect_equal(dim(sbc_cal$theta), c(n_test, 2))
  st <- nbi:::sbc_stats(sbc_cal, 20)
  expect_true(all(st$p_value > 1e-3), info = paste(format(st$p_value), collapse = ", "))
  expect_true(all(abs(st$mean_rank - 0.5) < 0.1))
})

test_that("an overconfident engine fails both diagnostics", {
  cov <- nbi_coverage(eng_over, n_test = n_test, n_samples = 500, seed = 11)
  expect_true(all(cov_at(cov, 0.9) < 0.6))
  expect_true(all(cov$coverage[-c(1, length(cov$levels)), ] <
                    cov_cal$coverage[-c(1, length(cov$levels)), ] + 0.05))
  sbc <- nbi_sbc(eng_over, n_test = n_test, n_samples = 500, seed = 12)
  st <- nbi:::sbc_stats(sbc, 20)
  expect_true(all(st$p_value < 1e-6))
  # the truths fall in the tails: a U-shaped rank histogram
  tails <- colMeans(sbc$ranks < 25 | sbc$ranks > 475)
  expect_true(all(tails > 0.3))
})

test_that("quantiles and ranks count the draws below the truth", {
  expect_equal(sbc_cal$n_samples, 1000L)
  expect_equal(cov_cal$coverage, nbi:::coverage_table(cov_cal$quantiles, cov_cal$levels))
  u <- matrix(c(0.5, 0.2, 0.96, 0.01), 4, 1, dimnames = list(NULL, "p"))
  ct <- nbi:::coverage_table(u, c(0, 0.5, 0.9, 1))
  expect_equal(unname(ct[, 1]), c(0.25, 0.25, 0.5, 1))
  rb <- nbi:::rank_bins(9, 5)  # ranks 0..9 in pairs
  expect_equal(rb$of(0:9), rep(1:5, each = 2))
  expect_equal(rb$prob, rep(0.2, 5))
  rb <- nbi:::rank_bins(10, 4)  # 11 ranks: bins of 3, 3, 3, 2 (floor(r * 4 / 11))
  expect_equal(sum(rb$prob), 1)
  expect_equal(tabulate(rb$of(0:10), 4), c(3L, 3L, 3L, 2L))
})

test_that("results are reproducible with `seed`", {
  a <- nbi_sbc(eng_cal, n_test = 20, n_samples = 50, seed = 3)
  b <- nbi_sbc(eng_cal, n_test = 20, n_samples = 50, seed = 3)
  c <- nbi_sbc(eng_cal, n_test = 20, n_samples = 50, seed = 4)
  expect_identical(a, b)
  expect_false(identical(a$ranks, c$ranks))
  set.seed(5); r1 <- runif(1)
  set.seed(5); invisible(nbi_coverage(eng_cal, n_test = 20, n_samples = 50, seed = 3))
  expect_identical(runif(1), r1)  # the session's RNG stream is left alone
  p <- nbi_coverage(eng_cal, n_test = 20, n_samples = 50, seed = 3)
  q <- nbi_coverage(eng_cal, n_test = 20, n_samples = 50, seed = 3)
  expect_identical(p, q)
  expect_equal(p$quantiles, a$ranks / 50)  # same seed, same test cases and draws
})

test_that("errors name the argument", {
  unfitted <- nbi_engine(lin_sim, lin_prior())
  expect_error(nbi_coverage(unfitted), "not fitted")
  expect_error(nbi_sbc(unfitted), "not fitted")
  expect_error(nbi_sbc(list()), "object.*nbi_engine")
  expect_error(nbi_coverage(eng_cal, n_test = 1), "n_test")
  expect_error(nbi_sbc(eng_cal, n_test = 2.5), "n_test")
  expect_error(nbi_sbc(eng_cal, n_test = "a"), "n_test")
  expect_error(nbi_coverage(eng_cal, n_samples = 0), "n_samples")
  expect_error(nbi_sbc(eng_cal, n_samples = c(10, 20)), "n_samples")
  expect_error(nbi_sbc(eng_cal, bins = 1), "bins")
  expect_error(nbi_sbc(eng_cal, seed = -1), "seed")
  expect_error(nbi_coverage(eng_cal, threads = 0), "threads")
})

test_that("print and plot methods run", {
  expect_output(print(cov_cal), "nbi coverage: 200 test cases x 1000 posterior draws")
  expect_output(print(cov_cal), "0\\.90")
  expect_output(print(sbc_cal), "nbi SBC: 200 test cases x 1000 posterior draws, ranks in 20 bins")
  expect_output(print(sbc_cal, bins = 10), "ranks in 10 bins")
  expect_output(print(sbc_cal), "p-value")
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  mf <- graphics::par("mfrow")
  expect_invisible(plot(cov_cal))
  expect_invisible(plot(sbc_cal))
  expect_invisible(plot(sbc_cal, bins = 7, col = "darkred"))
  expect_identical(graphics::par("mfrow"), mf)
})

test_that("one-parameter engines and a noise closure work", {
  sim1 <- function(theta) theta[["mu"]] + c(0, 0, 0)
  noise1 <- function(x, theta) x + matrix(stats::rnorm(length(x), sd = 0.5), nrow(x))
  eng <- fit(nbi_engine(sim1, nbi_prior(mu = prior_normal(0, 1)), noise = noise1,
                        flow = flow_maf(blocks = 2, hidden = 16, mixture = 2)),
             n_sims = 500, n_epochs = 5, seed = 1, verbose = FALSE)
  s <- nbi_sbc(eng, n_test = 10, n_samples = 30, bins = 100, seed = 1)
  expect_equal(dim(s$ranks), c(10, 1))
  expect_equal(s$bins, 31L)
  cv <- nbi_coverage(eng, n_test = 10, n_samples = 30, seed = 1)
  expect_equal(dim(cv$coverage), c(101, 1))
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  expect_invisible(plot(s))
  expect_invisible(plot(cv))
})

test_that("set featurizers work (observations are lists of sets)", {
  set_sim <- function(theta) {
    k <- sample(3:6, 1)
    tok <- sample(1:3, k, replace = TRUE)
    cbind(tok, theta[["mu"]] * tok)
  }
  eng <- fit(nbi_engine(set_sim, nbi_prior(mu = prior_normal(0, 1)), noise = 0.3,
                        featurizer = featurizer_set_transformer(n_tokens = 3, d_model = 8,
                                                                heads = 2, layers = 1,
                                                                hidden = 16, dim_out = 8,
                                                                n_values = 1),
                        flow = flow_maf(blocks = 2, hidden = 16, mixture = 2)),
             n_sims = 300, n_epochs = 2, seed = 1, verbose = FALSE)
  s <- nbi_sbc(eng, n_test = 15, n_samples = 40, seed = 2)
  expect_equal(dim(s$ranks), c(15, 1))
  expect_equal(colnames(s$ranks), "mu")
  cv <- nbi_coverage(eng, n_test = 15, n_samples = 40, seed = 2)
  expect_equal(cv$quantiles, s$ranks / 40)
})
