# The classifier two-sample test: the classifier's gradient, its accuracy on known cases,
# argument checks and reproducibility.

test_that("the C2ST classifier's loss gradient matches finite differences", {
  set.seed(11)
  d <- 3; h1 <- 5; h2 <- 4; B <- 7
  np <- h1 * d + h1 + h2 * h1 + h2 + h2 + 1
  params <- rnorm(np, sd = 0.7)
  x <- matrix(rnorm(d * B), d, B)            # one sample per column
  y <- c(0, 1, 1, 0, 1, 0, 0)
  opts <- list(h1 = h1, h2 = h2, l2 = 0.3, threads = 1L)
  r <- .Call(C_r_c2st_loss_grad, params, x, y, opts)
  loss <- function(p) .Call(C_r_c2st_loss_grad, p, x, y, opts)$loss
  expect_equal(r$loss, loss(params))
  # the loss by hand: mean softplus(z) - y z plus the weight penalty
  relu <- function(v) pmax(v, 0)
  W1 <- matrix(params[1:(h1 * d)], d, h1); o <- h1 * d
  b1 <- params[o + 1:h1]; o <- o + h1
  W2 <- matrix(params[o + 1:(h2 * h1)], h1, h2); o <- o + h2 * h1
  b2 <- params[o + 1:h2]; o <- o + h2
  w3 <- params[o + 1:h2]; b3 <- params[np]
  z <- drop(crossprod(w3, relu(crossprod(W2, relu(crossprod(W1, x) + b1)) + b2))) + b3
  ref <- mean(log1p(exp(z)) - y * z) + 0.5 * 0.3 * sum(W1^2, W2^2, w3^2) / B
  expect_equal(r$loss, ref, tolerance = 1e-12)
  expect_lt(max_rel_err(r$grad, fd_grad(loss, params)), 1e-6)
  # no penalty, and large logits (the stable form must not overflow)
  opts0 <- list(h1 = h1, h2 = h2, l2 = 0, threads = 1L)
  big <- params * 20
  r0 <- .Call(C_r_c2st_loss_grad, big, x, y, opts0)
  expect_true(is.finite(r0$loss) && all(is.finite(r0$grad)))
  loss0 <- function(p) .Call(C_r_c2st_loss_grad, p, x, y, opts0)$loss
  expect_lt(max_rel_err(.Call(C_r_c2st_loss_grad, params, x, y, opts0)$grad,
                        fd_grad(loss0, params)), 1e-6)
})

test_that("the C entries reject malformed input", {
  x <- matrix(rnorm(6), 2, 3)
  opts <- list(h1 = 4, h2 = 4, l2 = 0, threads = 1L)
  np <- 4 * 2 + 4 + 16 + 4 + 4 + 1
  expect_error(.Call(C_r_c2st_loss_grad, rnorm(np - 1), x, c(0, 1, 0), opts), "params")
  expect_error(.Call(C_r_c2st_loss_grad, rnorm(np), x, c(0, 2, 0), opts), "y")
  expect_error(.Call(C_r_c2st_loss_grad, rnorm(np), x, c(0, 1), opts), "y")
  expect_error(.Call(C_r_c2st_loss_grad, rnorm(np), as.vector(x), c(0, 1, 0), opts), "x")
  expect_error(.Call(C_r_c2st_loss_grad, rnorm(np), x, c(0, 1, 0), list(h1 = 4)), "h2")
  fopts <- list(h1 = 4, h2 = 4, epochs = 2, batch = 2, patience = 1, threads = 1, lr = 1e-3,
                l2 = 0, tol = 0, seed = 1)
  xt <- matrix(rnorm(4), 2, 2)
  expect_error(.Call(C_r_c2st_fit_predict, x, c(0, 1, 0), NULL, NULL, matrix(1, 3, 2), fopts),
               "x_test")
  x_na <- x; x_na[2] <- NA
  expect_error(.Call(C_r_c2st_fit_predict, x_na, c(0, 1, 0), NULL, NULL, xt, fopts), "x_train")
  expect_error(.Call(C_r_c2st_fit_predict, x, c(0, 1, 0), xt, NULL, xt, fopts), "y_valid")
  expect_error(.Call(C_r_c2st_fit_predict, x, c(0, 1, 0), NULL, NULL, xt,
                     replace(fopts, "lr", -1)), "lr")
  expect_error(.Call(C_r_c2st_fit_predict, x, c(0, 1, 0), NULL, NULL, xt,
                     replace(fopts, "batch", 0)), "batch")
  p <- .Call(C_r_c2st_fit_predict, x, c(0, 1, 0), NULL, NULL, xt, fopts)
  expect_true(all(p > 0 & p < 1) && length(p) == 2)
})

test_that("two samples from one distribution give about 0.5", {
  set.seed(1)
  a <- matrix(rnorm(2000), ncol = 2)
  b <- matrix(rnorm(2000), ncol = 2)
  acc <- nbi_c2st(a, b, seed = 3)
  expect_s3_class(acc, "nbi_c2st")
  expect_length(attr(acc, "folds"), 5)
  expect_lt(abs(as.numeric(acc) - 0.5), 0.03)
})

test_that("shifted Gaussians are told apart", {
  set.seed(2)
  a <- matrix(rnorm(2000), ncol = 2)
  b <- cbind(rnorm(1000, mean = 3), rnorm(1000))
  acc <- as.numeric(nbi_c2st(a, b, seed = 4))
  expect_gt(acc, 0.9)
  expect_lt(acc, 0.97)      # the Bayes accuracy is pnorm(1.5) = 0.933
})

test_that("nbi_c2st checks its arguments", {
  a <- matrix(rnorm(40), ncol = 2)
  expect_error(nbi_c2st(a, matrix(rnorm(60), ncol = 3)), "same number of columns")
  a_na <- a; a_na[3, 1] <- NA
  expect_error(nbi_c2st(a_na, a), "`a` has NA")
  expect_error(nbi_c2st(a, a[1:4, ]), "at least `folds`")
  expect_error(nbi_c2st(a, a, folds = 1), "folds")
  expect_error(nbi_c2st(a, "x"), "`b` must be a numeric")
  expect_error(nbi_c2st(a, a, hidden = 0), "hidden")
  expect_error(nbi_c2st(a, a, seed = -1), "seed")
  expect_error(nbi_c2st(a, a, lr = 0), "lr")
})

test_that("set.seed() and seed reproduce the result; inputs of other shapes work", {
  a <- matrix(rnorm(200), ncol = 2)
  b <- matrix(rnorm(200, mean = 0.5), ncol = 2)
  set.seed(5); r1 <- nbi_c2st(a, b, n_epochs = 30)
  set.seed(5); r2 <- nbi_c2st(a, b, n_epochs = 30)
  expect_identical(r1, r2)
  expect_identical(nbi_c2st(a, b, n_epochs = 30, seed = 9), nbi_c2st(a, b, n_epochs = 30, seed = 9))
  expect_identical(nbi_c2st(a, b, n_epochs = 30, seed = 9, threads = 2),
                   nbi_c2st(a, b, n_epochs = 30, seed = 9))
  # a data frame, and vectors for one dimension
  expect_identical(nbi_c2st(as.data.frame(a), b, n_epochs = 30, seed = 9),
                   nbi_c2st(a, b, n_epochs = 30, seed = 9))
  r <- nbi_c2st(a[, 1], b[, 1], n_epochs = 30, seed = 9)
  expect_true(as.numeric(r) >= 0 && as.numeric(r) <= 1)
  expect_output(print(r), "C2ST accuracy")
  # posteriors: their draws, resampled when weighted (the default width uses their dimension)
  post <- structure(list(theta = a, log_weights = rnorm(nrow(a), sd = 0.1)), class = "nbi_posterior")
  rp <- nbi_c2st(post, b, n_epochs = 30, seed = 9)
  expect_true(as.numeric(rp) >= 0 && as.numeric(rp) <= 1)
  expect_identical(rp, nbi_c2st(post, b, n_epochs = 30, seed = 9))
  post$log_weights <- NULL
  expect_identical(nbi_c2st(post, b, n_epochs = 30, seed = 9), nbi_c2st(a, b, n_epochs = 30, seed = 9))
})
