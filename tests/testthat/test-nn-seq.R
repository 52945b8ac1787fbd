# Sequence layers (conv1d, layer norm, max-pool, GRU): forward against direct R loops,
# gradients against finite differences of sum(dout * out). Arrays are c(C, L, B): x[c, t, b].

conv1d_ref <- function(x, w, b) {
  C <- dim(x)[1]; L <- dim(x)[2]; B <- dim(x)[3]; k <- dim(w)[2]; OC <- dim(w)[3]; p <- k %/% 2
  out <- array(0, c(OC, L, B))
  for (bb in 1:B) for (t in 1:L) for (o in 1:OC) {
    s <- b[o]
    for (j in 1:k) {
      u <- t + j - 1 - p
      if (u >= 1 && u <= L) s <- s + sum(w[, j, o] * x[, u, bb])
    }
    out[o, t, bb] <- s
  }
  out
}

test_that("conv1d matches a direct loop and finite differences", {
  set.seed(11)
  B <- 2; L <- 7; C <- 3; OC <- 4
  for (k in c(1L, 3L, 5L)) {
    x <- array(rnorm(C * L * B), c(C, L, B))
    w <- array(rnorm(C * k * OC), c(C, k, OC))   # w[c, j, o] = row o, column j*C + c of the C layout
    b <- rnorm(OC)
    dout <- array(rnorm(OC * L * B), c(OC, L, B))
    dims <- c(B, L, C, OC, k)
    r <- .Call(C_r_nn_conv1d, x, w, b, dout, dims)
    expect_equal(r[[1]], conv1d_ref(x, w, b), tolerance = 1e-12)
    loss <- function(x, w, b) sum(dout * .Call(C_r_nn_conv1d, x, w, b, dout, dims)[[1]])
    expect_lt(max_rel_err(as.vector(r[[2]]), fd_grad(function(v) loss(v, w, b), as.vector(x))), 1e-6)
    expect_lt(max_rel_err(as.vector(r[[3]]), fd_grad(function(v) loss(x, v, b), as.vector(w))), 1e-6)
    expect_lt(max_rel_err(r[[4]], fd_grad(function(v) loss(x, w, v), b)), 1e-6)
  }
})

test_that("layernorm matches R and finite differences", {
  set.seed(12)
  N <- 4; C <- 6
  x <- matrix(rnorm(C * N, 1, 2), C, N)      # one row per column
  gamma <- rnorm(C); beta <- rnorm(C)
  dout <- matrix(rnorm(C * N), C, N)
  r <- .Call(C_r_nn_layernorm, x, gamma, beta, dout, c(N, C))
  ref <- apply(x, 2, function(v) (v - mean(v)) / sqrt(mean((v - mean(v))^2) + 1e-5) * gamma + beta)
  expect_equal(r[[1]], ref, tolerance = 1e-12)
  loss <- function(x, g, b) sum(dout * .Call(C_r_nn_layernorm, x, g, b, dout, c(N, C))[[1]])
  expect_lt(max_rel_err(as.vector(r[[2]]), fd_grad(function(v) loss(v, gamma, beta), as.vector(x))), 1e-6)
  expect_lt(max_rel_err(r[[3]], fd_grad(function(v) loss(x, v, beta), gamma)), 1e-6)
  expect_lt(max_rel_err(r[[4]], fd_grad(function(v) loss(x, gamma, v), beta)), 1e-6)
})

test_that("maxpool2 matches R and finite differences, dropping a trailing odd position", {
  set.seed(13)
  B <- 2; L <- 7; C <- 3; L2 <- L %/% 2
  x <- array(sample(B * L * C) / 10 - 2, c(C, L, B))   # distinct values: no ties, no kinks within h
  dout <- array(rnorm(C * L2 * B), c(C, L2, B))
  r <- .Call(C_r_nn_maxpool2, x, dout, c(B, L, C))
  ref <- array(0, c(C, L2, B))
  for (bb in 1:B) for (i in 1:L2) ref[, i, bb] <- pmax(x[, 2 * i - 1, bb], x[, 2 * i, bb])
  expect_equal(r[[1]], ref, tolerance = 1e-12)
  expect_true(all(r[[2]][, L, ] == 0))
  fd <- fd_grad(function(v) sum(dout * .Call(C_r_nn_maxpool2, v, dout, c(B, L, C))[[1]]), as.vector(x))
  expect_lt(max_rel_err(as.vector(r[[2]]), fd), 1e-6)
  expect_length(.Call(C_r_nn_maxpool2, 1, numeric(0), c(1, 1, 1))[[1]], 0)
})

# PyTorch's GRU equations; Wih: C x 3H and Whh: H x 3H with column g = weight row g (blocks r, z, n)
gru_ref <- function(x, Wih, Whh, bih, bhh) {
  C <- dim(x)[1]; T <- dim(x)[2]; B <- dim(x)[3]; H <- nrow(Whh)
  sig <- function(a) 1 / (1 + exp(-a))
  ir <- 1:H; iz <- H + 1:H; ig <- 2 * H + 1:H
  out <- array(0, c(H, T, B))
  for (bb in 1:B) {
    h <- numeric(H)
    for (t in 1:T) {
      gi <- drop(crossprod(Wih, x[, t, bb])) + bih
      gh <- drop(crossprod(Whh, h)) + bhh
      r <- sig(gi[ir] + gh[ir]); z <- sig(gi[iz] + gh[iz])
      n <- tanh(gi[ig] + r * gh[ig])
      h <- (1 - z) * n + z * h
      out[, t, bb] <- h
    }
  }
  out
}

test_that("GRU matches a direct R implementation and finite differences (BPTT)", {
  set.seed(14)
  B <- 2; T <- 4; C <- 3; H <- 5; dims <- c(B, T, C, H)
  x <- array(rnorm(C * T * B), c(C, T, B))
  Wih <- matrix(rnorm(C * 3 * H, sd = 0.6), C, 3 * H)
  Whh <- matrix(rnorm(H * 3 * H, sd = 0.6), H, 3 * H)
  bih <- rnorm(3 * H, sd = 0.3); bhh <- rnorm(3 * H, sd = 0.3)
  dout <- array(rnorm(H * T * B), c(H, T, B))
  r <- .Call(C_r_nn_gru, x, Wih, Whh, bih, bhh, dout, dims)
  expect_equal(r[[1]], gru_ref(x, Wih, Whh, bih, bhh), tolerance = 1e-12)
  loss <- function(x = x0, Wih = Wih0, Whh = Whh0, bih = bih0, bhh = bhh0)
    sum(dout * .Call(C_r_nn_gru, x, Wih, Whh, bih, bhh, dout, dims)[[1]])
  x0 <- x; Wih0 <- Wih; Whh0 <- Whh; bih0 <- bih; bhh0 <- bhh
  expect_lt(max_rel_err(as.vector(r[[2]]), fd_grad(function(v) loss(x = v), as.vector(x))), 1e-6)
  expect_lt(max_rel_err(as.vector(r[[3]]), fd_grad(function(v) loss(Wih = v), as.vector(Wih))), 1e-6)
  expect_lt(max_rel_err(as.vector(r[[4]]), fd_grad(function(v) loss(Whh = v), as.vector(Whh))), 1e-6)
  expect_lt(max_rel_err(r[[5]], fd_grad(function(v) loss(bih = v), bih)), 1e-6)
  expect_lt(max_rel_err(r[[6]], fd_grad(function(v) loss(bhh = v), bhh)), 1e-6)
  # a single step and a single sample go through the t = 0 path only
  r1 <- .Call(C_r_nn_gru, x[, 1, 1], Wih, Whh, bih, bhh, dout[, 1, 1], c(1, 1, C, H))
  expect_equal(as.vector(r1[[1]]), as.vector(gru_ref(x[, 1, 1, drop = FALSE], Wih, Whh, bih, bhh)),
               tolerance = 1e-12)
  expect_true(all(r1[[4]] == 0))
})

test_that("sequence layer entries reject malformed input", {
  x <- rnorm(2 * 3 * 4)
  expect_error(.Call(C_r_nn_conv1d, x, rnorm(3 * 2 * 5), rnorm(5), rnorm(2 * 3 * 5), c(2, 3, 4, 5, 2)), "odd")
  expect_error(.Call(C_r_nn_conv1d, x[-1], rnorm(3 * 4 * 5), rnorm(5), rnorm(2 * 3 * 5), c(2, 3, 4, 5, 3)), "'x'")
  expect_error(.Call(C_r_nn_conv1d, x, rnorm(4 * 5), rnorm(5), rnorm(2 * 3 * 5), c(2, 3, 4, 5, 3)), "'w'")
  expect_error(.Call(C_r_nn_conv1d, x, rnorm(3 * 4 * 5), rnorm(4), rnorm(2 * 3 * 5), c(2, 3, 4, 5, 3)), "'b'")
  expect_error(.Call(C_r_nn_conv1d, x, rnorm(3 * 4 * 5), rnorm(5), rnorm(2), c(2, 3, 4, 5, 3)), "'dout'")
  expect_error(.Call(C_r_nn_conv1d, x, rnorm(3 * 4 * 5), rnorm(5), rnorm(2 * 3 * 5), c(2, 3, 4, 5)), "dims")
  expect_error(.Call(C_r_nn_conv1d, x, rnorm(3 * 4 * 5), rnorm(5), rnorm(2 * 3 * 5), c(2, 3, 4, 5, 0)), "dims")
  expect_error(.Call(C_r_nn_layernorm, rnorm(6), rnorm(2), rnorm(3), rnorm(6), c(2, 3)), "gamma")
  expect_error(.Call(C_r_nn_layernorm, 1:6, rnorm(3), rnorm(3), rnorm(6), c(2, 3)), "'x'")
  expect_error(.Call(C_r_nn_layernorm, rnorm(6), rnorm(3), rnorm(3), rnorm(6), c(2, NA)), "dims")
  expect_error(.Call(C_r_nn_maxpool2, rnorm(12), rnorm(5), c(2, 3, 2)), "dout")
  expect_error(.Call(C_r_nn_gru, rnorm(6), rnorm(9), rnorm(8), rnorm(3), rnorm(3), rnorm(2), c(1, 2, 3, 1)), "Whh")
  expect_error(.Call(C_r_nn_gru, rnorm(6), rnorm(9), rnorm(3), rnorm(3), rnorm(3), rnorm(3), c(1, 2, 3, 1)), "dout")
  expect_error(.Call(C_r_nn_gru, rnorm(6), rnorm(9), rnorm(3), rnorm(3), rnorm(3), rnorm(2), c(1, 2, 3, 1.5)), "dims")
})
