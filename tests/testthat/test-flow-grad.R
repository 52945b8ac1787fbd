# Finite-difference checks of the flow's log-density gradient with respect to every
# parameter, the conditioning vector and theta (smooth activations: relu has kinks).

flow_grad_case <- function(d, act, blocks = 3, mixture = 3, n = 4, nc = 3) {
  spec <- small_spec(d = d, nc = nc, act = act, blocks = blocks, mixture = mixture)
  p <- random_params(spec)
  set.seed(10 + d)
  th <- matrix(rnorm(d * n), d, n)
  ctx <- matrix(rnorm(nc * n), nc, n)
  g <- rnorm(n)
  r <- .Call(C_r_flow_grad, spec, p, th, ctx, g, 1L)
  lp <- function(pp, cc, tt) sum(g * .Call(C_r_flow_grad, spec, pp, tt, cc, g, 1L)[[1]])
  fd <- fd_grad(function(v) lp(v, ctx, th), p)
  list(
    params = max_rel_err(r[[2]], fd),
    context = max_rel_err(as.vector(r[[3]]), fd_grad(function(v) lp(p, matrix(v, nc), th), as.vector(ctx))),
    theta = max_rel_err(as.vector(r[[4]]), fd_grad(function(v) lp(p, ctx, matrix(v, d)), as.vector(th))),
    masked = r[[2]][fd == 0])  # masked weights: the density ignores them
}

test_that("flow log-density gradients match finite differences (d = 1, 2, 3)", {
  for (act in c("tanh", "gelu")) for (d in 1:3) {
    e <- flow_grad_case(d, act)
    expect_lt(e$params, 1e-6)
    expect_lt(e$context, 1e-6)
    expect_lt(e$theta, 1e-6)
    expect_lt(max(abs(e$masked), 0), 1e-12)  # masked weights get no gradient
  }
})

test_that("one mixture block alone and a single component work", {
  e <- flow_grad_case(2, "tanh", blocks = 1, mixture = 1)
  expect_lt(max(e$params, e$context, e$theta), 1e-6)
})

test_that("featurizer + flow loss gradient matches finite differences", {
  spec <- small_spec(d = 2, nc = 4, act = "tanh", featurizer = featurizer_mlp(c(6, 5), 4, "gelu"),
                     n_in = 7)
  p <- random_params(spec, scale = 0.3)
  set.seed(3)
  x <- matrix(rnorm(7 * 6), 7, 6)
  th <- matrix(rnorm(2 * 6), 2, 6)
  r <- .Call(C_r_model_nll_grad, spec, p, x, th, 1L)
  fd <- fd_grad(function(v) .Call(C_r_model_nll_grad, spec, v, x, th, 1L)[[1]], p)
  n_feat <- spec$feat$n_in * 6 + 6 + 6 * 5 + 5 + 5 * 4 + 4
  expect_lt(max_rel_err(r[[2]], fd), 1e-6)
  expect_gt(sum(abs(r[[2]][seq_len(n_feat)])), 0)  # the featurizer is trained too
  lq <- .Call(C_r_model_log_prob, spec, p, x, th, 1, 1L)
  expect_equal(r[[1]], -mean(lq), tolerance = 1e-12)
})

test_that("a batch split into parallel shards has the whole batch's loss and gradient", {
  # batches of 128 rows or more run as two shards (rows 1..66 and 67..131 here), each on
  # its own thread; batches of 66 and 65 rows run whole, so they give the reference
  spec <- small_spec(d = 2, nc = 4, act = "tanh", featurizer = featurizer_mlp(c(6, 5), 4, "gelu"),
                     n_in = 7)
  p <- random_params(spec, scale = 0.3)
  set.seed(4)
  n <- 131
  x <- matrix(rnorm(7 * n), 7, n)
  th <- matrix(rnorm(2 * n), 2, n)
  a <- .Call(C_r_model_nll_grad, spec, p, x[, 1:66], th[, 1:66], 1L)
  b <- .Call(C_r_model_nll_grad, spec, p, x[, 67:n], th[, 67:n], 1L)
  r <- .Call(C_r_model_nll_grad, spec, p, x, th, 1L)
  expect_equal(r[[1]], (66 * a[[1]] + 65 * b[[1]]) / n, tolerance = 1e-12)
  expect_equal(r[[2]], (66 * a[[2]] + 65 * b[[2]]) / n, tolerance = 1e-12)
  expect_gt(max(abs(r[[2]] - a[[2]])), 1e-6)  # the halves differ, so the sum is tested
  for (threads in 2:4)  # 4: two threads per shard, in nested teams
    expect_identical(.Call(C_r_model_nll_grad, spec, p, x, th, threads), r)
})
