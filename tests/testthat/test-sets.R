# Variable-size photometric sets with featurizer_set_transformer: a black body seen through
# a random subset of 3-8 of 10 bands, each with its own error (seed 003).

lambda <- seq(0.35, 2.2, length.out = 10)              # band centres, micron
bb_mag <- function(theta, band) {
  T <- 10^theta[["logT"]]
  planck <- lambda[band]^-5 / expm1(14388 / (lambda[band] * T))
  theta[["scale"]] - 2.5 * log10(planck / lambda[5]^-5 * expm1(14388 / (lambda[5] * 5000)))
}
bb_sim <- function(theta) {
  band <- sort(sample(10, sample(3:8, 1)))
  err <- stats::runif(length(band), 0.02, 0.1)
  cbind(band = band, mag = bb_mag(theta, band), err = err)
}
bb_noise <- function(x, theta) lapply(x, function(s) {
  s[, 2] <- s[, 2] + stats::rnorm(nrow(s), sd = s[, 3])
  s
})
bb_prior <- function() nbi_prior(logT = prior_uniform(3.5, 4.3), scale = prior_uniform(-1, 1))
bb_engine <- function(...) {
  nbi_engine(bb_sim, bb_prior(), noise = bb_noise,
             featurizer = featurizer_set_transformer(n_tokens = 10, d_model = 16, heads = 2,
                                                     layers = 1, hidden = 32, dim_out = 16),
             flow = flow_maf(blocks = 3, hidden = 32, mixture = 2), ...)
}

test_that("set observations are validated and padded sets give the same answer", {
  eng <- fit(bb_engine(), n_sims = 300, n_epochs = 2, seed = 1, verbose = FALSE)
  set.seed(3)
  s <- bb_noise(list(bb_sim(c(logT = 3.8, scale = 0.2))), NULL)[[1]]
  th <- matrix(c(3.8, 0.2), 1)
  lp <- nbi_log_prob(eng, th, s)
  expect_true(is.finite(lp))
  expect_equal(nbi_log_prob(eng, th, s[rev(seq_len(nrow(s))), ]), lp, tolerance = 1e-12)
  expect_equal(nbi_log_prob(eng, th, as.data.frame(s)), lp, tolerance = 1e-12)
  # evaluated next to a bigger set (so padded to more rows): the same log-density
  big <- rbind(s, s)
  both <- nbi_log_prob(eng, rbind(th, th), list(s, big))
  expect_equal(both[1], lp, tolerance = 1e-12)
  post <- predict(eng, list(s, big), n_samples = 50, seed = 1)
  expect_s3_class(post, "nbi_posterior_list")
  bad <- s; bad[1, 1] <- 11
  expect_error(predict(eng, bad), "tokens")
  expect_error(predict(eng, s[, 1:2]), "3 columns")
})

test_that("90% intervals of a photometric set problem cover the truth near the nominal rate", {
  skip_on_cran()
  eng <- fit(bb_engine(), n_sims = 6000, n_epochs = 40, batch_size = 64, lr = 2e-3, seed = 2,
             verbose = FALSE)
  set.seed(11)
  n_test <- 100
  truth <- sample_prior(bb_prior(), n_test)
  obs <- bb_noise(lapply(seq_len(n_test), function(i) bb_sim(truth[i, ])), NULL)
  posts <- predict(eng, obs, n_samples = 400, seed = 5)
  inside <- vapply(seq_len(n_test), function(i) {
    q <- apply(posts[[i]]$theta, 2, stats::quantile, c(0.05, 0.95))
    truth[i, ] >= q[1, ] & truth[i, ] <= q[2, ]
  }, logical(2))
  cover <- rowMeans(inside)
  expect_true(all(cover > 0.8 & cover < 0.98), info = paste(round(cover, 2), collapse = " "))
})
