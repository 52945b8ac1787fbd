test_that("linear layer matches R's matrix algebra and finite differences", {
  set.seed(1)
  C <- 4; OC <- 3; B <- 5
  x <- matrix(rnorm(C * B), C, B)      # one sample per column
  w <- matrix(rnorm(C * OC), C, OC)    # column o holds output o's weights
  b <- rnorm(OC)
  dout <- matrix(rnorm(OC * B), OC, B)
  r <- .Call(C_r_nn_linear, x, w, b, dout)
  expect_equal(r[[1]], t(w) %*% x + b, tolerance = 1e-12)
  expect_equal(r[[2]], w %*% dout, tolerance = 1e-12)
  loss <- function(x, w, b) sum(dout * .Call(C_r_nn_linear, x, w, b, dout)[[1]])
  expect_lt(max_rel_err(as.vector(r[[2]]), fd_grad(function(v) loss(matrix(v, C), w, b), as.vector(x))), 1e-6)
  expect_lt(max_rel_err(as.vector(r[[3]]), fd_grad(function(v) loss(x, matrix(v, C), b), as.vector(w))), 1e-6)
  expect_lt(max_rel_err(r[[4]], fd_grad(function(v) loss(x, w, v), b)), 1e-6)
})

test_that("activations and their derivatives are right", {
  set.seed(2)
  x <- rnorm(50)
  x <- x[abs(x) > 1e-3]               # keep away from relu's kink
  dout <- rnorm(length(x))
  ref <- list(pmax(x, 0), tanh(x), x * pnorm(x))
  for (a in 0:2) {
    r <- .Call(C_r_nn_act, x, dout, a, 1L)
    expect_equal(r[[1]], ref[[a + 1]], tolerance = 1e-12)
    fd <- fd_grad(function(v) sum(dout * .Call(C_r_nn_act, v, dout, a, 1L)[[1]]), x)
    expect_lt(max_rel_err(r[[2]], fd), 1e-6)
  }
  # GELU is a Chebyshev series for the normal cdf (nn/vmath.h): check it over the whole
  # range, tails included, element by element against R's pnorm / dnorm
  z <- c(seq(-40, 40, by = 0.0137), -1e300, 1e300, 0)
  g <- .Call(C_r_nn_act, z, rep(1, length(z)), 2L, 1L)
  ref_f <- z * pnorm(z)
  ref_g <- pnorm(z) + z * dnorm(z)
  ok <- abs(ref_f) > 1e-290 | ref_f == 0  # vm_exp flushes below e^-700 to zero
  expect_lt(max(abs(g[[1]][ok] - ref_f[ok]) / pmax(abs(ref_f[ok]), 1e-300)), 1e-12)
  ok <- abs(ref_g) > 1e-290 | ref_g == 0
  expect_lt(max(abs(g[[2]][ok] - ref_g[ok]) / pmax(abs(ref_g[ok]), 1e-300)), 1e-12)
  big <- rnorm(1e5)                   # large enough for the threaded path
  expect_identical(.Call(C_r_nn_act, big, big, 2L, 1L), .Call(C_r_nn_act, big, big, 2L, 2L))
})

test_that("layer entries reject malformed input", {
  expect_error(.Call(C_r_nn_linear, matrix(1, 2, 2), 1:4, c(1, 1), matrix(1, 2, 2)), "w")
  expect_error(.Call(C_r_nn_act, c(1, 2), 1, 0L, 1L), "dout")
  expect_error(.Call(C_r_nn_act, c(1, 2), c(1, 2), 7L, 1L), "act")
})
