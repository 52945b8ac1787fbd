# The ResNet-GRU featurizer: exact gradients through the whole featurizer + flow loss, and a
# light-curve fit that recovers the truth.

rg_spec <- function(L = 9, channels = 2, depth = 3, n_rnn = 2) {
  model_spec(featurizer_resnet_gru(channels = channels, depth = depth, kernel = 3,
                                   dim_conv_min = 2, dim_conv_max = 4, n_rnn = n_rnn,
                                   dim_out = 3),
             flow_maf(blocks = 2, hidden = 6, mixture = 2, activation = "tanh"),
             n_in = L * channels, d = 2)
}

test_that("featurizer + flow loss gradient matches finite differences", {
  for (cfg in list(list(L = 9, channels = 2, depth = 3, n_rnn = 2),
                   list(L = 5, channels = 1, depth = 1, n_rnn = 1))) {
    spec <- do.call(rg_spec, cfg)
    p <- random_params(spec, scale = 0.3)
    set.seed(4)
    n <- 3
    x <- matrix(rnorm(spec$feat$n_in * n), spec$feat$n_in, n)
    th <- matrix(rnorm(2 * n), 2, n)
    r <- .Call(C_r_model_nll_grad, spec, p, x, th, 1L)
    fd <- fd_grad(function(v) .Call(C_r_model_nll_grad, spec, v, x, th, 1L)[[1]], p)
    expect_lt(max_rel_err(r[[2]], fd), 1e-6)
    n_feat <- length(p) - .Call(C_r_model_n_params, list(
      feat = list(type = 0L, n_in = 3L, hidden = integer(0), n_out = 3L, act = 0L),
      flow = spec$flow))
    expect_gt(sum(abs(r[[2]][seq_len(n_feat)])), 0)   # the featurizer is trained
  }
})

test_that("sequence observations: vectors and length x channels matrices", {
  sim <- function(theta) cbind(theta[["a"]] * sin(1:12), theta[["b"]] * cos(1:12))
  eng <- nbi_engine(sim, nbi_prior(a = prior_uniform(-1, 1), b = prior_uniform(-1, 1)),
                    featurizer = featurizer_resnet_gru(channels = 2, depth = 2, dim_conv_min = 4,
                                                       dim_conv_max = 8, n_rnn = 1, dim_out = 8),
                    flow = flow_maf(blocks = 2, hidden = 16, mixture = 1), noise = 0.05)
  eng <- fit(eng, n_sims = 300, n_epochs = 2, seed = 1, verbose = FALSE)
  x <- sim(c(a = 0.5, b = -0.2))
  p1 <- predict(eng, x, n_samples = 20, seed = 1, importance = FALSE)
  expect_equal(dim(p1$theta), c(20L, 2L))
  p2 <- predict(eng, list(x, x), n_samples = 20, seed = 1, importance = FALSE)
  expect_s3_class(p2, "nbi_posterior_list")
  expect_equal(p2[[1]]$theta, p1$theta, tolerance = 1e-10)  # BLAS may round B = 1 and B = 2 differently
  expect_error(predict(eng, x[1:10, ]), "x_obs")
  expect_equal(length(eng$model$x_mean), 24L)
  expect_equal(eng$model$x_mean[1], eng$model$x_mean[3])   # one scale per channel
})

test_that("a sine fit with featurizer_resnet_gru recovers held-out truths", {
  skip_on_cran()
  t_grid <- seq(0, 1, length.out = 30)
  sim <- function(theta) theta[["A"]] * sin(theta[["omega"]] * t_grid + 0.5)
  prior <- nbi_prior(A = prior_uniform(0.5, 2), omega = prior_uniform(3, 9))
  eng <- nbi_engine(sim, prior, noise = 0.1,
                    featurizer = featurizer_resnet_gru(depth = 2, dim_conv_min = 8,
                                                       dim_conv_max = 16, n_rnn = 1,
                                                       dim_out = 16),
                    flow = flow_maf(blocks = 3, hidden = 32, mixture = 2))
  eng <- fit(eng, n_sims = 3000, n_epochs = 40, batch_size = 64, lr = 2e-3, seed = 1,
             verbose = FALSE)
  set.seed(7)
  truth <- sample_prior(prior, 20)
  xs <- t(apply(truth, 1, sim)) + matrix(rnorm(20 * 30, sd = 0.1), 20)
  posts <- predict(eng, xs, n_samples = 500, seed = 2, importance = FALSE)
  z <- t(vapply(seq_len(20), function(i) {
    th <- posts[[i]]$theta
    (colMeans(th) - truth[i, ]) / apply(th, 2, sd)
  }, numeric(2)))
  expect_gt(mean(abs(z) < 2), 0.85)
})
