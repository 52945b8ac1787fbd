#' Network specifications
#'
#' Constructors for the two parts of the neural network: a featurizer that turns an
#' observation into a conditioning vector, and the conditional flow that models the
#' posterior given that vector. They only record hyperparameters; weights are created when
#' the engine is fitted.
#'
#' `flow_maf()` is a conditional masked autoregressive flow (Papamakarios et al. 2017):
#' `blocks - 1` affine MADE blocks followed by one autoregressive mixture-of-Gaussians block
#' with `mixture` components per dimension. Each block has its own random ordering of the
#' parameters, the conditioning vector enters every block, and every output (the first
#' coordinate included) depends on it. Log-scales of the affine blocks are bounded smoothly
#' to \[-`clamp`, `clamp`\]; log-sds of the mixture to \[-5, 5\] (in standardised units).
#'
#' Training budget: a ResNet-GRU learns more slowly than an MLP; on light curves of 50
#' points (`bench/defaults.R`, 10,000 simulations) the default `fit(n_epochs = 100)` is
#' still improving at its last epoch. What kept its posteriors from being calibrated there
#' was the iterate average: with only the long window (`fit(average = 0.999)`, about 1,000
#' steps) omega's central intervals covered too often (seed 1, 500 tests: 0.932 and 0.974
#' at the 90% and 95% levels, outside their bands), because the average removes the
#' iterates' location noise but keeps the widths each iterate learnt for it. `fit()` now validates a
#' second, 100-step window every epoch and keeps the better one; at the defaults every
#' coverage level of every parameter is then inside its binomial band on seeds 1, 2 and 3
#' (500 tests each), and so is every level of the photometric-set problem. `fit(lr = 3e-3)` or `n_epochs = 200` lower the validation loss further
#' (-9.21 against -8.63 on one seed). Check with [nbi_coverage()] and [nbi_sbc()], and give
#' sequence featurizers more epochs (or simulations) when the best epoch in
#' `engine$history$epochs` is the last one.
#'
#' @param blocks total number of blocks, including the final mixture block (>= 1).
#' @param hidden units per hidden layer (a vector of layer widths for `featurizer_mlp()`).
#' @param layers hidden layers per block (>= 1); blocks of `featurizer_set_transformer()`.
#' @param mixture mixture components per dimension in the final block.
#' @param clamp bound of the affine log-scales.
#' @param seed seed of the random orderings and of the initial weights (does not touch the
#'   session's random number stream).
#' @param activation `"relu"`, `"tanh"` or `"gelu"`.
#' @return An object of class `nbi_flow` or `nbi_featurizer`.
#' @examples
#' flow_maf(blocks = 3, hidden = 32)
#' featurizer_mlp(hidden = c(64, 64), dim_out = 16)
#' @export
flow_maf <- function(blocks = 5, hidden = 64, layers = 2, mixture = 4, clamp = 1, seed = 1,
                     activation = "relu") {
  check_count(blocks, "blocks", min = 1)
  check_count(hidden, "hidden", min = 1)
  check_count(layers, "layers", min = 1, max = 16)
  check_count(mixture, "mixture", min = 1)
  check_number(clamp, "clamp", lower = 0, inclusive = FALSE)
  check_count(seed, "seed", min = 0)
  act <- match_activation(activation, "activation")
  structure(list(blocks = as.integer(blocks), hidden = as.integer(hidden),
                 layers = as.integer(layers), mixture = as.integer(mixture),
                 clamp = as.numeric(clamp), seed = as.numeric(seed), activation = act),
            class = "nbi_flow")
}

#' @rdname flow_maf
#' @export
featurizer_identity <- function() {
  structure(list(type = "identity"), class = "nbi_featurizer")
}

#' @rdname flow_maf
#' @param dim_out size of the conditioning vector the featurizer produces.
#' @export
featurizer_mlp <- function(hidden = c(128, 128), dim_out = 64, activation = "gelu") {
  if (!is.numeric(hidden) || anyNA(hidden) || any(hidden < 1) || any(hidden != round(hidden)) ||
      length(hidden) > 16)
    stop("featurizer_mlp(): `hidden` must be a vector of at most 16 positive whole numbers",
         call. = FALSE)
  check_count(dim_out, "dim_out", min = 1)
  structure(list(type = "mlp", hidden = as.integer(hidden), dim_out = as.integer(dim_out),
                 activation = match_activation(activation, "activation")),
            class = "nbi_featurizer")
}

#' @rdname flow_maf
#' @param channels input channels of a sequence observation (1 for a plain vector; an
#'   observation is then a numeric vector, otherwise a length x channels matrix).
#' @param depth residual convolution blocks.
#' @param kernel convolution kernel width (odd).
#' @param dim_conv_min,dim_conv_max channels of the first block, doubling per block up to
#'   `dim_conv_max`.
#' @param n_rnn GRU layers after the convolutions (their hidden size is the last block's
#'   channel count); the last state feeds a linear map to `dim_out`.
#' @export
featurizer_resnet_gru <- function(channels = 1, depth = 3, kernel = 3, dim_conv_min = 32,
                                  dim_conv_max = 256, n_rnn = 2, dim_out = 128) {
  check_count(channels, "channels", min = 1)
  check_count(depth, "depth", min = 1, max = 16)
  check_count(kernel, "kernel", min = 1, max = 1001)
  if (kernel %% 2 == 0) stop("`kernel` must be odd ('same' padding)", call. = FALSE)
  check_count(dim_conv_min, "dim_conv_min", min = 1)
  check_count(dim_conv_max, "dim_conv_max", min = dim_conv_min)
  check_count(n_rnn, "n_rnn", min = 1, max = 16)
  check_count(dim_out, "dim_out", min = 1)
  structure(list(type = "resnet_gru", channels = as.integer(channels), depth = as.integer(depth),
                 kernel = as.integer(kernel), dim_conv_min = as.integer(dim_conv_min),
                 dim_conv_max = as.integer(dim_conv_max), n_rnn = as.integer(n_rnn),
                 dim_out = as.integer(dim_out)),
            class = "nbi_featurizer")
}

#' @rdname flow_maf
#' @param n_tokens number of distinct tokens (e.g. filters); column 1 of a set observation
#'   holds integers in 1..n_tokens.
#' @param n_values value columns per row after the token (e.g. 2: magnitude and error).
#' @param d_model,heads width and attention heads of the set transformer; there `layers`
#'   counts its pre-norm attention blocks and `hidden` is the width of its feed-forward
#'   layers.
#' @export
featurizer_set_transformer <- function(n_tokens, d_model = 64, heads = 4, layers = 2,
                                       hidden = 128, dim_out = 64, n_values = 2) {
  if (missing(n_tokens)) stop("`n_tokens` is missing: how many distinct tokens (filters)?",
                              call. = FALSE)
  check_count(n_tokens, "n_tokens", min = 1)
  check_count(d_model, "d_model", min = 1)
  check_count(heads, "heads", min = 1)
  if (d_model %% heads != 0) stop("`d_model` must be a multiple of `heads`", call. = FALSE)
  check_count(layers, "layers", min = 1, max = 16)
  check_count(hidden, "hidden", min = 1)
  check_count(dim_out, "dim_out", min = 1)
  check_count(n_values, "n_values", min = 1)
  structure(list(type = "set_transformer", n_tokens = as.integer(n_tokens),
                 d_model = as.integer(d_model), heads = as.integer(heads),
                 layers = as.integer(layers), hidden = as.integer(hidden),
                 dim_out = as.integer(dim_out), n_values = as.integer(n_values)),
            class = "nbi_featurizer")
}

#' @export
print.nbi_flow <- function(x, ...) {
  cat(sprintf("<nbi flow: MAF, %d affine block(s) + mixture block (%d components), %d x %d hidden, %s, clamp %g>\n",
              x$blocks - 1L, x$mixture, x$layers, x$hidden, x$activation, x$clamp))
  invisible(x)
}

#' @export
print.nbi_featurizer <- function(x, ...) {
  if (x$type == "identity") cat("<nbi featurizer: identity>\n")
  else if (x$type == "timeseries") {
    cat(sprintf("<nbi featurizer: time series, %d-layer MLP (%d) per epoch -> %d, %s pooling (%d queries, %d heads), %d time frequencies%s -> %d>\n",
                x$layers, x$hidden, x$d_model,
                if (x$pool == "mean") "mean" else "attention + mean", x$queries, x$heads,
                x$n_freq, if (x$bands > 1) sprintf(", %d bands", x$bands) else "", x$dim_out))
    if (!is.null(x$time_params))
      cat(sprintf("  time parameters %s, read relative to each curve's peak (%s value)\n",
                  paste(x$time_params, collapse = ", "), x$peak))
  }
  else if (x$type == "set_transformer")
    cat(sprintf("<nbi featurizer: set transformer, %d tokens x %d value(s), d_model %d, %d heads, %d layers -> %d>\n",
                x$n_tokens, x$n_values, x$d_model, x$heads, x$layers, x$dim_out))
  else if (x$type == "resnet_gru")
    cat(sprintf("<nbi featurizer: ResNet-GRU, %d channel(s), %d blocks (%d..%d channels, kernel %d), %d GRU layer(s) -> %d>\n",
                x$channels, x$depth, x$dim_conv_min, x$dim_conv_max, x$kernel, x$n_rnn, x$dim_out))
  else cat(sprintf("<nbi featurizer: MLP %s -> %d, %s>\n",
                   paste(x$hidden, collapse = " x "), x$dim_out, x$activation))
  invisible(x)
}

activation_codes <- c(relu = 0L, tanh = 1L, gelu = 2L)

match_activation <- function(x, arg) {
  if (!is.character(x) || length(x) != 1 || !x %in% names(activation_codes))
    stop(sprintf("`%s` must be one of \"relu\", \"tanh\", \"gelu\"", arg), call. = FALSE)
  x
}

# Random orderings, one per block, drawn from `seed` without touching the session's RNG.
flow_orders <- function(d, blocks, seed) {
  with_seed(seed, unlist(lapply(seq_len(blocks), function(b) sample.int(d) - 1L)))
}

# The C-level spec of featurizer + flow for n_in observation features and d parameters.
# `feat`: the featurizer's C spec when it depends on the data (time series: R/timeseries.R).
model_spec <- function(featurizer, flow, n_in, d, feat = NULL) {
  feat <- if (!is.null(feat)) feat else if (featurizer$type == "resnet_gru") {
    if (n_in %% featurizer$channels != 0)
      stop(sprintf("observations have %d values, not a multiple of `channels` = %d",
                   n_in, featurizer$channels), call. = FALSE)
    list(type = 2L, n_in = as.integer(n_in), seq_len = as.integer(n_in / featurizer$channels),
         channels = featurizer$channels, depth = featurizer$depth, kernel = featurizer$kernel,
         dim_conv_min = featurizer$dim_conv_min, dim_conv_max = featurizer$dim_conv_max,
         n_rnn = featurizer$n_rnn, n_out = featurizer$dim_out)
  } else if (featurizer$type == "set_transformer") {
    if (n_in %% (1 + featurizer$n_values) != 0)
      stop(sprintf("observations have %d values, not a multiple of 1 + `n_values` = %d",
                   n_in, 1 + featurizer$n_values), call. = FALSE)
    list(type = 3L, n_in = as.integer(n_in), rows = as.integer(n_in / (1 + featurizer$n_values)),
         values = featurizer$n_values, n_tokens = featurizer$n_tokens,
         d_model = featurizer$d_model, heads = featurizer$heads, layers = featurizer$layers,
         hidden = featurizer$hidden, n_out = featurizer$dim_out)
  } else if (featurizer$type == "identity") {
    list(type = 0L, n_in = as.integer(n_in), hidden = integer(0), n_out = as.integer(n_in),
         act = 0L)
  } else {
    list(type = 1L, n_in = as.integer(n_in), hidden = featurizer$hidden,
         n_out = featurizer$dim_out, act = activation_codes[[featurizer$activation]])
  }
  list(feat = feat,
       flow = list(d = as.integer(d), nc = feat$n_out, hidden = flow$hidden,
                   layers = flow$layers, blocks = flow$blocks, K = flow$mixture,
                   act = activation_codes[[flow$activation]], clamp = flow$clamp,
                   clamp_mix = 5, order = flow_orders(d, flow$blocks, flow$seed)))
}

model_init <- function(spec, seed) .Call(C_r_model_init, spec, as.numeric(seed))
