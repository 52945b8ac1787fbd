# The float32 compute path: matrix products in single precision (sgemm, or nbi's own C
# kernel), everything else in double. Gradients are checked in float64 elsewhere; here the
# float32 results must agree with float64 ones.

with_precision <- function(spec, precision) {
  spec$precision <- precision
  spec
}

# a model big enough that its products take the float32 path (>= 64^3 multiply-adds)
wide_case <- function(featurizer = featurizer_identity(), n_in = 24, d = 4, n = 256,
                      x = NULL, seed = 1) {
  spec <- small_spec(d = d, nc = if (featurizer$type == "identity") n_in else featurizer$dim_out,
                     hidden = 96, blocks = 3, mixture = 3, act = "relu",
                     featurizer = featurizer, n_in = n_in, seed = seed)
  p <- random_params(spec, seed, scale = 0.02)
  set.seed(seed)
  if (is.null(x)) x <- matrix(stats::rnorm(n_in * n), n_in, n)
  list(spec = spec, p = p, x = x, th = matrix(stats::rnorm(d * n), d, n))
}

precisions <- c("float32", "float32-kernel")

test_that("float32 log-densities agree with float64 within 1e-4 (MLP featurizer and flow)", {
  cs <- wide_case(featurizer_mlp(hidden = c(96, 96), dim_out = 32))
  ref <- .Call(C_r_model_log_prob, cs$spec, cs$p, cs$x, cs$th, 1, 1L)
  for (pr in precisions) {
    lq <- .Call(C_r_model_log_prob, with_precision(cs$spec, pr), cs$p, cs$x, cs$th, 1, 1L)
    expect_lt(max(abs(lq - ref)), 1e-4)
    expect_gt(max(abs(lq - ref)), 0)  # the float32 path did run
  }
})

test_that("a log-density is the same whether its context is its own or shared by the call", {
  # one context per point: each tile of 64 points computes its contexts' parts itself; one
  # context for all points: the call computes it once. Same arithmetic, identical numbers.
  w <- wide_case(n = 130)  # three tiles, the last one partly padding
  for (prec in c("float64", "float32")) {
    spec <- with_precision(w$spec, prec)
    all <- .Call(C_r_model_log_prob, spec, w$p, w$x, w$th, 1, 2L)
    for (i in c(1, 64, 65, 130)) {
      one <- .Call(C_r_model_log_prob, spec, w$p, w$x[, i, drop = FALSE],
                   w$th[, i, drop = FALSE], 1, 1L)
      expect_identical(one, all[i])
      shared <- .Call(C_r_model_log_prob, spec, w$p, w$x[, i, drop = FALSE], w$th, 1, 2L)
      expect_identical(shared[i], all[i])
    }
    expect_identical(.Call(C_r_model_log_prob, spec, w$p, w$x, w$th, 1, 1L), all)
  }
})

test_that("float32 log-densities agree with float64 for the ResNet-GRU and the set transformer", {
  f <- featurizer_resnet_gru(depth = 2, dim_conv_min = 16, dim_conv_max = 32, n_rnn = 1,
                             dim_out = 16)
  L <- 32
  spec <- small_spec(d = 2, nc = 16, hidden = 64, featurizer = f, n_in = L, act = "relu")
  p <- random_params(spec, 2, scale = 0.02)
  set.seed(2)
  x <- matrix(stats::rnorm(L * 128), L, 128)
  th <- matrix(stats::rnorm(2 * 128), 2, 128)
  ref <- .Call(C_r_model_log_prob, spec, p, x, th, 1, 1L)
  for (pr in precisions)
    expect_lt(max(abs(.Call(C_r_model_log_prob, with_precision(spec, pr), p, x, th, 1, 1L) -
                        ref)), 1e-4)

  st <- featurizer_set_transformer(n_tokens = 5, d_model = 32, heads = 4, layers = 1,
                                   hidden = 64, dim_out = 16)
  st$n_values <- 1L
  rows <- 6
  spec <- small_spec(d = 2, nc = 16, hidden = 64, featurizer = st, n_in = rows * 2, act = "relu")
  p <- random_params(spec, 3, scale = 0.02)
  n <- 128
  x <- matrix(0, rows * 2, n)
  for (j in seq_len(n)) {
    k <- sample(2:rows, 1)
    x[2 * seq_len(k) - 1, j] <- sample(5, k, replace = TRUE)
    x[2 * seq_len(k), j] <- stats::rnorm(k)
  }
  th <- matrix(stats::rnorm(2 * n), 2, n)
  ref <- .Call(C_r_model_log_prob, spec, p, x, th, 1, 1L)
  for (pr in precisions)
    expect_lt(max(abs(.Call(C_r_model_log_prob, with_precision(spec, pr), p, x, th, 1, 1L) -
                        ref)), 1e-4)
})

test_that("float32 gradients agree with float64 ones to float32 accuracy", {
  cs <- wide_case(featurizer_mlp(hidden = c(96, 96), dim_out = 32), n = 128)
  ref <- .Call(C_r_model_nll_grad, cs$spec, cs$p, cs$x, cs$th, 1L)
  for (pr in precisions) {
    g <- .Call(C_r_model_nll_grad, with_precision(cs$spec, pr), cs$p, cs$x, cs$th, 1L)
    expect_lt(abs(g[[1]] - ref[[1]]), 1e-5)
    expect_lt(max(abs(g[[2]] - ref[[2]])) / max(abs(ref[[2]])), 1e-4)
  }
})

test_that("float32 draws carry their log-density and are reproducible", {
  cs <- wide_case(n = 1)
  for (pr in precisions) {
    spec <- with_precision(cs$spec, pr)
    z <- .Call(C_r_model_sample, spec, cs$p, cs$x, 600L, 7, 1, 1L)
    lq <- .Call(C_r_model_log_prob, spec, cs$p, cs$x, z, 1, 1L)
    expect_lt(max(abs(attr(z, "log_prob") - lq)), 1e-4)
    expect_identical(.Call(C_r_model_sample, spec, cs$p, cs$x, 600L, 7, 1, 2L), z)
  }
})

test_that("the float32 C kernel multiplies every transpose combination correctly", {
  # a linear map through the model path is hard to isolate; use the flow's context layer:
  # an identity featurizer and one block whose hidden layer is a plain product
  set.seed(5)
  for (shape in list(c(70, 3, 130), c(1, 1, 1), c(5, 257, 9))) {
    cs <- wide_case(n_in = shape[1], d = 1, n = shape[3], seed = shape[2])
    ref <- .Call(C_r_model_nll_grad, cs$spec, cs$p, cs$x, cs$th, 1L)
    g <- .Call(C_r_model_nll_grad, with_precision(cs$spec, "float32-kernel"), cs$p, cs$x,
               cs$th, 1L)
    expect_lt(abs(g[[1]] - ref[[1]]), 1e-5 * max(1, abs(ref[[1]])))
    expect_lt(max(abs(g[[2]] - ref[[2]])) / max(abs(ref[[2]])), 1e-4)
  }
})

test_that("an engine fitted in float32 recovers the conjugate posterior", {
  # theta ~ N(0, 1), x_i | theta ~ N(theta, 0.5^2), 6 observations: posterior is Gaussian
  sim <- function(theta) theta[, 1] + matrix(stats::rnorm(nrow(theta) * 6, sd = 0.5), nrow(theta))
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), vectorized = TRUE,
                    featurizer = featurizer_mlp(hidden = c(64, 64), dim_out = 16),
                    flow = flow_maf(blocks = 3, hidden = 64), precision = "float32")
  expect_equal(eng$precision, "float32")
  expect_output(print(eng), "float32")
  eng <- fit(eng, n_sims = 4000, n_epochs = 30, batch_size = 128, seed = 3, verbose = FALSE)
  x_obs <- c(0.9, 1.3, 0.4, 1.1, 0.7, 1.6)
  post_var <- 1 / (1 + 6 / 0.25)
  post_mean <- post_var * sum(x_obs) / 0.25
  post <- predict(eng, x_obs, n_samples = 4000, seed = 1, importance = FALSE)
  expect_lt(abs(mean(post$theta) - post_mean), 0.15 * sqrt(post_var))
  expect_lt(abs(stats::sd(post$theta) / sqrt(post_var) - 1), 0.15)
  # the same fitted network evaluated in float64 gives the same density to 1e-4
  lq32 <- nbi_log_prob(eng, post$theta[1:50, , drop = FALSE], x_obs)
  eng64 <- eng
  eng64$precision <- "float64"
  expect_lt(max(abs(nbi_log_prob(eng64, post$theta[1:50, , drop = FALSE], x_obs) - lq32)), 1e-4)
})

test_that("precision is checked and old engines without it compute in float64", {
  sim <- function(theta) theta[["mu"]] + stats::rnorm(3)
  expect_error(nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), precision = "half"),
               "`precision`")
  expect_error(nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), precision = c("a", "b")),
               "`precision`")
  # float64 explicitly: the suite also runs with options(nbi.precision = "float32"), and
  # sampling and log-densities compute in float for networks of any size
  eng <- fit(nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), flow = flow_maf(blocks = 2, hidden = 8),
                        precision = "float64"),
             n_sims = 200, n_epochs = 2, seed = 1, verbose = FALSE)
  old <- eng
  old$precision <- NULL
  th <- matrix(c(-1, 0, 1))
  expect_identical(nbi_log_prob(old, th, c(0, 0.1, 0.2)), nbi_log_prob(eng, th, c(0, 0.1, 0.2)))
  bad <- eng$model$spec
  bad$precision <- "float16"
  expect_error(.Call(C_r_model_log_prob, bad, eng$model$params, matrix(0, 3, 1), matrix(0, 1, 1),
                     1, 1L), "precision")
  expect_type(.Call(C_r_have_sgemm), "logical")
  expect_true(.Call(C_r_sgemm_kernel) %in% c("nbi base", "nbi avx2", "nbi avx512", "blas sgemm"))
  expect_true(.Call(C_r_dgemm_kernel) %in% c("nbi base", "nbi avx2", "nbi avx512", "blas dgemm"))
})

test_that("matrix products in tiles agree with R's for every transpose, precision and thread count", {
  # shapes: one column panel (then row tiles of 128), several column panels, one tile; in
  # nbi's float32 kernel: edge panels of rows and columns, several blocks of k (256 each) with
  # a partial last one, fewer rows than a panel (sgemm in mode 1 where it exists)
  set.seed(8)
  for (sh in list(c(300, 50, 70), c(50, 300, 70), c(40, 30, 20), c(130, 14, 600), c(7, 140, 300)))
    for (ta in 0:1) for (tb in 0:1) {
    M <- sh[1]; N <- sh[2]; K <- sh[3]
    a <- if (ta) matrix(rnorm(K * M), K, M) else matrix(rnorm(M * K), M, K)
    b <- if (tb) matrix(rnorm(N * K), N, K) else matrix(rnorm(K * N), K, N)
    c0 <- matrix(rnorm(M * N), M, N)
    ref <- 0.7 * ((if (ta) t(a) else a) %*% (if (tb) t(b) else b)) + 0.3 * c0
    tol <- 1e-4 * max(1, sqrt(K / 70))  # float32 rounding grows like sqrt(K)
    # modes: 0 float64 (nbi's kernel or dgemm, as the CPU chooses), 1 float32, 2 float32 by
    # nbi's kernel, 3 float64 by nbi's kernel, 4 float64 by dgemm; float64 by nbi's kernel
    # needs alpha 1 and beta 0 or 1 (else dgemm), so modes 3 and 4 also run with those
    for (mode in 0:4) {
      co <- if (mode >= 3) c(1, 1) else c(0.7, 0.3)
      ref_m <- if (mode >= 3) ref / 0.7 - 0.3 * c0 / 0.7 + c0 else ref
      r1 <- .Call(C_r_nn_gemm, a, b, c0, c(ta, tb), co, mode, 1L, 0L)
      # float32 products of 70 standard normals: rounding of order 1e-6 relative
      expect_lt(max(abs(r1 - ref_m)), if (mode %in% c(0, 3, 4)) 1e-12 * max(1, K / 70) else tol)
      if (mode >= 3) {
        r0 <- .Call(C_r_nn_gemm, a, b, c0, c(ta, tb), c(1, 0), mode, 1L, 0L)
        expect_lt(max(abs(r0 - (ref_m - c0))), 1e-12 * max(1, K / 70))
        for (th in 2:3) expect_identical(.Call(C_r_nn_gemm, a, b, c0, c(ta, tb), c(1, 0), mode, th, 0L), r0)
      }
      for (th in 2:3)
        expect_identical(.Call(C_r_nn_gemm, a, b, c0, c(ta, tb), co, mode, th, 0L), r1)
      # operands read from a registered float copy (training's weights): the same numbers,
      # so identical results; a copy holding other values changes the float32 products
      # (both operands doubled: 4 x the product), so the copy is really what is read
      expect_identical(.Call(C_r_nn_gemm, a, b, c0, c(ta, tb), co, mode, 2L, 1L), r1)
      r2 <- .Call(C_r_nn_gemm, a, b, c0, c(ta, tb), co, mode, 2L, 2L)
      in_float <- mode == 2 || (mode == 1 && M * N * K >= 64^3)  # smaller ones stay double
      if (!in_float) expect_identical(r2, r1)
      else expect_lt(max(abs(r2 - (4 * (ref - 0.3 * c0) + 0.3 * c0))), 4 * tol)
    }
  }
  expect_error(.Call(C_r_nn_gemm, diag(2), diag(3), diag(2), c(0L, 0L), c(1, 0), 0L, 1L, 0L),
               "non-conformable")
})
