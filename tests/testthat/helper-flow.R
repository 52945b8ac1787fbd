# Helpers shared by the flow tests: small random models and central finite differences.

small_spec <- function(d = 2, nc = 3, hidden = 8, layers = 2, blocks = 3, mixture = 3,
                       act = "tanh", featurizer = featurizer_identity(), n_in = nc, seed = 1) {
  model_spec(featurizer, flow_maf(blocks = blocks, hidden = hidden, layers = layers,
                                  mixture = mixture, seed = seed, activation = act),
             n_in = n_in, d = d)
}

# random parameters of a realistic scale (masked entries are zeroed by C)
random_params <- function(spec, seed = 1, scale = 0.5) {
  p <- model_init(spec, seed)
  with_seed(seed, p + scale * stats::rnorm(length(p)) * (p != 0))
}

# central differences with one Richardson step: truncation error O(h^4)
fd_grad <- function(f, x, h = 1e-4) {
  central <- function(i, h) {
    xp <- x; xm <- x
    xp[i] <- xp[i] + h; xm[i] <- xm[i] - h
    (f(xp) - f(xm)) / (2 * h)
  }
  vapply(seq_along(x), function(i) (4 * central(i, h / 2) - central(i, h)) / 3, numeric(1))
}

max_rel_err <- function(a, b) {
  max(abs(a - b) / pmax(1e-3, abs(a) + abs(b)))
}
