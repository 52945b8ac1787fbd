# The set-transformer featurizer: exact gradients through the featurizer + flow loss, exact
# invariance to the order of a set's rows and to its padding, and safe odd inputs.

st_feat <- function(layers = 2L, heads = 2L) {
  structure(list(type = "set_transformer", n_tokens = 4L, n_values = 2L, d_model = 8L,
                 heads = heads, layers = layers, hidden = 12L, dim_out = 3L),
            class = "nbi_featurizer")
}

st_spec <- function(R, ...) {
  model_spec(st_feat(...), flow_maf(blocks = 2, hidden = 6, mixture = 2, activation = "tanh"),
             n_in = R * 3, d = 2)
}

# sets as lists of k x 3 matrices (token, two values), padded with zero rows to R rows each
random_sets <- function(sizes, seed = 1) {
  with_seed(seed, lapply(sizes, function(k) {
    cbind(sample.int(4, k, replace = TRUE), matrix(rnorm(2 * k), k, 2))
  }))
}

pad_sets <- function(sets, R, fill = 0) {
  vapply(sets, function(s) {
    m <- matrix(fill, R, 3)
    m[, 1] <- 0
    if (nrow(s) > 0) m[seq_len(nrow(s)), ] <- s
    as.vector(t(m))   # row-major: token, values of row 1, then row 2, ...
  }, numeric(R * 3))
}

n_feat_params <- function(spec) {
  length(model_init(spec, 1)) - .Call(C_r_model_n_params, list(
    feat = list(type = 0L, n_in = 3L, hidden = integer(0), n_out = 3L, act = 0L),
    flow = spec$flow))
}

test_that("featurizer + flow loss gradient matches finite differences", {
  for (cfg in list(list(R = 5, layers = 2L, heads = 2L), list(R = 3, layers = 1L, heads = 1L))) {
    spec <- st_spec(cfg$R, layers = cfg$layers, heads = cfg$heads)
    nf <- n_feat_params(spec)
    p <- random_params(spec, scale = 0.3)
    p[seq_len(nf)] <- p[seq_len(nf)] + with_seed(2, 0.1 * rnorm(nf))  # nonzero biases and betas
    sizes <- c(cfg$R, 2, 1, 0)[seq_len(4)]
    x <- pad_sets(random_sets(pmin(sizes, cfg$R), seed = 3), cfg$R, fill = 5)
    th <- with_seed(4, matrix(rnorm(2 * ncol(x)), 2))
    r <- .Call(C_r_model_nll_grad, spec, p, x, th, 1L)
    fd <- fd_grad(function(v) .Call(C_r_model_nll_grad, spec, v, x, th, 1L)[[1]], p)
    expect_lt(max_rel_err(r[[2]], fd), 1e-6)
    g_feat <- r[[2]][seq_len(nf)]
    expect_gt(sum(abs(g_feat)), 0)                              # the featurizer is trained
    expect_gt(sum(abs(g_feat[seq_len(4 * 8)])), 0)              # token embedding included
    expect_equal(.Call(C_r_model_nll_grad, spec, p, x, th, 2L), r, tolerance = 1e-12)
  }
})

test_that("log-densities are invariant to row order, padding rows and their values", {
  R <- 6
  spec <- st_spec(R)
  p <- random_params(spec, scale = 0.3)
  sets <- random_sets(c(6, 4, 3, 1, 0, 5), seed = 5)
  th <- with_seed(6, matrix(rnorm(2 * length(sets)), 2))
  lp <- .Call(C_r_model_log_prob, spec, p, pad_sets(sets, R), th, 1, 1L)
  expect_true(all(is.finite(lp)))

  # permuted real rows, with the padding rows interleaved anywhere
  perm <- with_seed(7, lapply(sets, function(s) {
    m <- rbind(s[sample.int(nrow(s)), , drop = FALSE], matrix(0, R - nrow(s), 3))
    m[sample.int(R), , drop = FALSE]
  }))
  x_perm <- vapply(perm, function(m) as.vector(t(m)), numeric(R * 3))
  expect_lt(max(abs(.Call(C_r_model_log_prob, spec, p, x_perm, th, 1, 1L) - lp)), 1e-12)
  p2 <- random_params(spec, seed = 9, scale = 0.3)   # also under other parameters
  expect_lt(max(abs(.Call(C_r_model_log_prob, spec, p2, x_perm, th, 1, 1L) -
                    .Call(C_r_model_log_prob, spec, p2, pad_sets(sets, R), th, 1, 1L))), 1e-12)

  # more padding rows: the same parameter vector, the same densities
  spec9 <- st_spec(R + 3)
  expect_equal(.Call(C_r_model_n_params, spec9), .Call(C_r_model_n_params, spec))
  lp9 <- .Call(C_r_model_log_prob, spec9, p, pad_sets(sets, R + 3), th, 1, 1L)
  expect_lt(max(abs(lp9 - lp)), 1e-12)

  # garbage in the padding rows' values changes nothing
  for (fill in c(1e6, -3.5, NaN, Inf)) {
    lpg <- .Call(C_r_model_log_prob, spec, p, pad_sets(sets, R, fill = fill), th, 1, 1L)
    expect_lt(max(abs(lpg - lp)), 1e-12)
  }
  # ... nor in the gradient
  g0 <- .Call(C_r_model_nll_grad, spec, p, pad_sets(sets, R), th, 1L)
  gg <- .Call(C_r_model_nll_grad, spec, p, pad_sets(sets, R, fill = NaN), th, 1L)
  expect_true(all(is.finite(gg[[2]])))
  expect_lt(max(abs(gg[[2]] - g0[[2]])), 1e-12)

  # a real row's value does matter, and so does its token
  x2 <- pad_sets(sets, R); x2[2, 1] <- x2[2, 1] + 1
  expect_gt(abs(.Call(C_r_model_log_prob, spec, p, x2, th, 1, 1L)[1] - lp[1]), 1e-8)
  x3 <- pad_sets(sets, R); x3[1, 1] <- x3[1, 1] %% 4 + 1
  expect_gt(abs(.Call(C_r_model_log_prob, spec, p, x3, th, 1, 1L)[1] - lp[1]), 1e-8)
  # threads do not change the result
  expect_lt(max(abs(.Call(C_r_model_log_prob, spec, p, pad_sets(sets, R), th, 1, 3L) - lp)), 1e-12)
})

test_that("single-row sets, empty sets and out-of-range tokens", {
  spec1 <- st_spec(1)
  p <- random_params(spec1, scale = 0.3)
  sets <- random_sets(c(1, 1, 0), seed = 8)
  th <- with_seed(9, matrix(rnorm(6), 2))
  lp1 <- .Call(C_r_model_log_prob, spec1, p, pad_sets(sets, 1), th, 1, 1L)
  expect_true(all(is.finite(lp1)))
  lp4 <- .Call(C_r_model_log_prob, st_spec(4), p, pad_sets(sets, 4), th, 1, 1L)
  expect_lt(max(abs(lp4 - lp1)), 1e-12)
  g <- .Call(C_r_model_nll_grad, spec1, p, pad_sets(sets, 1), th, 1L)
  expect_true(is.finite(g[[1]]) && all(is.finite(g[[2]])))

  # tokens outside 1..n_tokens or not whole are ignored like padding rows: finite, no crash
  spec <- st_spec(3)
  base <- pad_sets(list(cbind(c(2, 3), matrix(c(0.1, -0.4, 1.2, 0.3), 2))), 3)
  th1 <- matrix(c(0.2, -0.1), 2)
  lp <- .Call(C_r_model_log_prob, spec, p, base, th1, 1, 1L)
  for (tok in c(5, -1, 2.5, 1e300, -Inf, NaN, NA)) {
    x <- base; x[7] <- tok; x[8:9] <- c(3, 4)
    lpt <- .Call(C_r_model_log_prob, spec, p, x, th1, 1, 1L)
    expect_true(is.finite(lpt))
    expect_lt(abs(lpt - lp), 1e-12)
    gt <- .Call(C_r_model_nll_grad, spec, p, x, th1, 1L)
    expect_true(all(is.finite(gt[[2]])))
  }
  x <- base; x[1] <- 7   # the first real row's token out of range: that row is dropped
  expect_true(is.finite(.Call(C_r_model_log_prob, spec, p, x, th1, 1, 1L)))
})

test_that("malformed set-transformer specs are refused", {
  spec <- st_spec(3)
  bad <- spec; bad$feat$heads <- 3L
  expect_error(.Call(C_r_model_n_params, bad), "multiple of heads")
  bad <- spec; bad$feat$n_in <- 10L
  expect_error(.Call(C_r_model_n_params, bad), "n_in")
  bad <- spec; bad$feat$layers <- 0L
  expect_error(.Call(C_r_model_n_params, bad), "out of range")
  expect_error(model_spec(st_feat(), flow_maf(), n_in = 10, d = 2), "multiple")
})
