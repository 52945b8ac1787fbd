# The flow is a normalised density whose samples follow it, for any d >= 1.

test_that("a 1-D flow integrates to 1 and its samples follow its CDF", {
  spec <- small_spec(d = 1, nc = 2, act = "tanh")
  p <- random_params(spec, scale = 0.5)
  ctx <- matrix(c(0.3, -1))
  grid <- seq(-20, 20, length.out = 40001)
  h <- grid[2] - grid[1]
  lq <- .Call(C_r_model_log_prob, spec, p, ctx, matrix(grid, 1), 1, 1L)
  expect_equal(sum(exp(lq)) * h, 1, tolerance = 1e-3)
  s <- .Call(C_r_model_sample, spec, p, ctx, 20000L, 42, 1, 1L)
  cdf <- stats::approxfun(grid, cumsum(exp(lq)) * h, rule = 2)
  expect_gt(suppressWarnings(stats::ks.test(as.vector(s), cdf))$p.value, 1e-3)
  # the log-density returned with the draws is the log-density of the draws
  expect_equal(attr(s, "log_prob"), .Call(C_r_model_log_prob, spec, p, ctx, s, 1, 1L), tolerance = 1e-10)
})

test_that("a 2-D flow integrates to 1 and its marginals follow the density", {
  spec <- small_spec(d = 2, nc = 2, act = "gelu")
  p <- random_params(spec, scale = 0.3)
  ctx <- matrix(c(-0.5, 0.8))
  g <- seq(-12, 12, length.out = 801)
  h <- g[2] - g[1]
  G <- as.matrix(expand.grid(g, g))
  dens <- matrix(exp(.Call(C_r_model_log_prob, spec, p, ctx, t(G), 1, 1L)), length(g))
  expect_equal(sum(dens) * h^2, 1, tolerance = 1e-3)
  s <- .Call(C_r_model_sample, spec, p, ctx, 20000L, 7, 1, 2L)
  for (j in 1:2) {
    marg <- if (j == 1) rowSums(dens) * h else colSums(dens) * h
    cdf <- stats::approxfun(g, cumsum(marg) * h, rule = 2)
    expect_gt(suppressWarnings(stats::ks.test(s[j, ], cdf))$p.value, 1e-3)
  }
  expect_equal(attr(s, "log_prob"), .Call(C_r_model_log_prob, spec, p, ctx, s, 1, 1L), tolerance = 1e-10)
})

test_that("draws carry their exact log-density in awkward shapes (sampling runs in MADE degree order)", {
  # hidden < d leaves degrees without units; hidden not a multiple of d gives uneven groups;
  # 400 draws per context make tiles of 64 draws that straddle two contexts. Every
  # activation, in both precisions (float32: the sampler's products in float, so its
  # log-density agrees with the float64 one to float accuracy).
  shapes <- list(c(d = 5, hidden = 3, layers = 2, act = 3), c(d = 4, hidden = 10, layers = 3, act = 1),
                 c(d = 3, hidden = 7, layers = 1, act = 2))
  for (sh in shapes) {
    spec <- small_spec(d = sh[["d"]], nc = 2, hidden = sh[["hidden"]], layers = sh[["layers"]],
                       act = c("relu", "tanh", "gelu")[sh[["act"]]])
    p <- random_params(spec, scale = 0.7)
    ctx <- matrix(c(0.3, -1.1, 1.5, 0.2), 2)
    s <- .Call(C_r_model_sample, spec, p, ctx, 400L, 3, 1, 1L)
    expect_equal(attr(s, "log_prob"),
                 .Call(C_r_model_log_prob, spec, p, ctx[, rep(1:2, each = 400)], s, 1, 1L),
                 tolerance = 1e-10)
    spec$precision <- "float32"
    s <- .Call(C_r_model_sample, spec, p, ctx, 400L, 3, 1, 2L)
    expect_equal(attr(s, "log_prob"),
                 .Call(C_r_model_log_prob, spec, p, ctx[, rep(1:2, each = 400)], s, 1, 1L),
                 tolerance = 1e-4)
  }
})

test_that("a tempered flow (base sds times tau) is normalised, and its draws carry its density", {
  spec <- small_spec(d = 2, nc = 2, act = "gelu")
  p <- random_params(spec, scale = 0.3)
  ctx <- matrix(c(-0.5, 0.8))
  g <- seq(-30, 30, length.out = 1201)
  h <- g[2] - g[1]
  G <- t(as.matrix(expand.grid(g, g)))
  for (tau in c(1.5, 2.5)) {
    dens <- exp(.Call(C_r_model_log_prob, spec, p, ctx, G, tau, 1L))
    expect_equal(sum(dens) * h^2, 1, tolerance = 1e-3)
    s <- .Call(C_r_model_sample, spec, p, ctx, 4000L, 5, tau, 1L)
    expect_equal(attr(s, "log_prob"), .Call(C_r_model_log_prob, spec, p, ctx, s, tau, 1L),
                 tolerance = 1e-10)
  }
  # one mixture block with one component and d = 1: x ~ N(m, s^2) becomes N(m, tau^2 s^2)
  spec1 <- small_spec(d = 1, nc = 2, blocks = 1, mixture = 1)
  p1 <- random_params(spec1, scale = 0.3)
  a <- .Call(C_r_model_sample, spec1, p1, ctx, 20000L, 6, 1, 1L)
  b <- .Call(C_r_model_sample, spec1, p1, ctx, 20000L, 6, 3, 1L)
  expect_equal(sd(b[1, ]) / sd(a[1, ]), 3, tolerance = 0.03)
  expect_equal(mean(b[1, ]), mean(a[1, ]), tolerance = 0.1 * sd(b[1, ]))
  expect_error(.Call(C_r_model_sample, spec1, p1, ctx, 10L, 6, 0.5, 1L), "temper")
  expect_error(.Call(C_r_model_log_prob, spec1, p1, ctx, a[, 1:3, drop = FALSE], NA_real_, 1L),
               "temper")
})

test_that("every coordinate, the first included, depends on the conditioning vector", {
  for (d in c(1, 3)) {
    spec <- small_spec(d = d, nc = 2, act = "tanh", blocks = 1)
    p <- random_params(spec, scale = 0.5)
    first <- spec$flow$order[1] + 1  # the first coordinate of the single (mixture) block
    a <- .Call(C_r_model_sample, spec, p, matrix(c(2, -2)), 5000L, 1, 1, 1L)
    b <- .Call(C_r_model_sample, spec, p, matrix(c(-2, 2)), 5000L, 1, 1, 1L)
    expect_lt(suppressWarnings(stats::ks.test(a[first, ], b[first, ]))$p.value, 1e-6)
  }
})

test_that("sampling is identical for 1 and 2 threads and for one or many observations", {
  spec <- small_spec(d = 3, nc = 2, act = "relu")
  p <- random_params(spec)
  ctx <- matrix(c(0.1, 0.2, -1, 1), 2)
  s1 <- .Call(C_r_model_sample, spec, p, ctx, 3000L, 9, 1, 1L)
  s2 <- .Call(C_r_model_sample, spec, p, ctx, 3000L, 9, 1, 2L)
  expect_identical(s1, s2)
  one <- .Call(C_r_model_sample, spec, p, ctx[, 1, drop = FALSE], 3000L, 9, 1, 1L)
  expect_identical(one[, 1:3000], s1[, 1:3000])
  l1 <- .Call(C_r_model_log_prob, spec, p, ctx[, c(1, 1, 2)], s1[, 1:3], 1, 1L)
  l2 <- .Call(C_r_model_log_prob, spec, p, ctx[, c(1, 1, 2)], s1[, 1:3], 1, 2L)
  expect_identical(l1, l2)
})

test_that("C entries reject malformed specs and parameters", {
  spec <- small_spec(d = 2)
  p <- model_init(spec, 1)
  expect_error(.Call(C_r_model_log_prob, spec, p[-1], matrix(0, 3, 1), matrix(0, 2, 1), 1, 1L), "params")
  bad <- spec; bad$flow$order <- c(0L, 0L, 1L, 0L, 1L, 0L)
  expect_error(.Call(C_r_model_init, bad, 1), "order")
  bad <- spec; bad$flow$nc <- 5L
  expect_error(.Call(C_r_model_init, bad, 1), "context")
  expect_error(.Call(C_r_model_log_prob, spec, p, matrix(0, 2, 1), matrix(0, 2, 1), 1, 1L), "x")
  expect_error(.Call(C_r_model_sample, spec, p, matrix(0, 3, 1), -1, 1, 1, 1L), "n_samples")
  expect_error(.Call(C_r_model_log_prob, spec, p, matrix(0, 3, 1), matrix(0, 2, 1), 1, 0L), "threads")
  expect_error(.Call(C_r_model_init, list(feat = 1), 1), "spec")
})

test_that("log-densities from the tiles equal those of the training forward pass", {
  # r_model_log_prob runs flow_log_prob (tiles of 64, units in degree order); r_flow_grad
  # runs flow_forward (whole-batch products, every unit): two implementations of log q.
  # 150 points: three tiles, the last one partial; one context per point or one shared.
  for (sh in list(c(d = 3, hidden = 8, layers = 2, act = 1), c(d = 5, hidden = 3, layers = 3, act = 2),
                  c(d = 4, hidden = 13, layers = 1, act = 3), c(d = 1, hidden = 6, layers = 2, act = 1))) {
    spec <- small_spec(d = sh[["d"]], nc = 3, hidden = sh[["hidden"]], layers = sh[["layers"]],
                       act = c("relu", "tanh", "gelu")[sh[["act"]]])
    p <- random_params(spec, scale = 0.5)
    set.seed(sh[["hidden"]])
    th <- matrix(stats::rnorm(sh[["d"]] * 150), sh[["d"]])
    ctx <- matrix(stats::rnorm(3 * 150), 3)
    ref <- .Call(C_r_flow_grad, spec, p, th, ctx, rep(0, 150), 1L)[[1]]
    expect_equal(.Call(C_r_model_log_prob, spec, p, ctx, th, 1, 2L), ref, tolerance = 1e-12)
    one <- .Call(C_r_flow_grad, spec, p, th, ctx[, rep(1, 150)], rep(0, 150), 1L)[[1]]
    expect_equal(.Call(C_r_model_log_prob, spec, p, ctx[, 1, drop = FALSE], th, 1, 1L), one,
                 tolerance = 1e-12)
  }
})

test_that("training's and sampling's log-densities agree for every block kind and precision", {
  # each bijective kind before each terminal kind (spec$flow$kinds), and each terminal kind
  # alone: flow_forward (training, rows) against flow_log_prob (tiles), float64 and float32
  kinds <- .Call(C_r_flow_block_kinds)
  expect_true(all(c("affine", "mog") %in% kinds$name))
  term <- which(kinds$terminal) - 1L
  bij <- which(!kinds$terminal) - 1L
  layouts <- c(lapply(term, function(t) t), unlist(lapply(bij, function(b)
    lapply(term, function(t) c(b, b, t))), recursive = FALSE))
  for (ks in layouts) {
    spec <- small_spec(d = 3, nc = 2, hidden = 7, blocks = length(ks))
    spec$flow$kinds <- as.integer(ks)
    p <- random_params(spec, scale = 0.5)
    set.seed(length(ks))
    th <- matrix(stats::rnorm(3 * 100), 3)
    ctx <- matrix(stats::rnorm(2 * 100), 2)
    for (prec in c("float64", "float32")) {
      spec$precision <- prec
      ref <- .Call(C_r_flow_grad, spec, p, th, ctx, rep(0, 100), 1L)[[1]]
      expect_equal(.Call(C_r_model_log_prob, spec, p, ctx, th, 1, 2L), ref,
                   tolerance = if (prec == "float64") 1e-12 else 1e-5,
                   label = sprintf("tiles, kinds %s, %s", paste(kinds$name[ks + 1], collapse = "+"), prec))
    }
  }
  # a terminal kind anywhere but last, or an unknown kind, is refused
  spec <- small_spec(d = 2, blocks = 2)
  spec$flow$kinds <- rev(as.integer(c(bij[1], term[1])))
  expect_error(.Call(C_r_model_n_params, spec), "kinds must name registered kinds")
  spec$flow$kinds <- c(0L, 99L)
  expect_error(.Call(C_r_model_n_params, spec), "kinds")
  spec$flow$kinds <- 0L
  expect_error(.Call(C_r_model_n_params, spec), "length blocks")
})
