# Training throughput of the featurizers (forward + backward + Adam through featurizer and
# flow, the C entry point fit() uses), at 1 and 2 threads, in float64 and float32 products
# (nbi_engine(precision = )). The BLAS runs with as many threads as nbi (float64) or one
# (float32, whose products spread their own panels over the threads), as in fit().
#
#   Rscript bench/featurizers.R        # after R CMD INSTALL .
#
# 1. ResNet-GRU of the seed 000 demo: sequences of length 50, depth 3, dim_conv_max 256,
#    dim_out 128 (channels 32, 64, 128; 2 GRU layers of 128), flow of 5 blocks x 128 hidden.
# 2. Set transformer: d_model 64, 4 heads, 2 layers, 10 tokens, sets of 3-10 rows of
#    (token, magnitude, error), flow of 5 blocks x 64 hidden.
suppressPackageStartupMessages(library(nbi))
# the shared train_rate(), from bench/lib next to this script
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])),
                 "lib", "train-rate.R"))
# NBI_BENCH_SMOKE=1: every measurement for a few milliseconds (CI checks the script runs)
target <- as.numeric(Sys.getenv("NBI_BENCH_SECONDS",
                                if (identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")) "0.01" else "3"))


set.seed(1)
cat("nbi featurizer benchmark |", R.version.string, "| BLAS:", extSoftVersion()[["BLAS"]], "\n\n")
d <- 3
n <- 2048
batch <- 128
L <- 50
rg <- nbi:::model_spec(featurizer_resnet_gru(depth = 3, dim_conv_max = 256, dim_out = 128),
                       flow_maf(blocks = 5, hidden = 128, mixture = 4), n_in = L, d = d)
x_rg <- matrix(rnorm(L * n), L, n)
theta <- matrix(rnorm(d * n), d, n)

rows <- 10
set_feat <- featurizer_set_transformer(n_tokens = 10, d_model = 64, heads = 4, layers = 2)
st <- nbi:::model_spec(set_feat, flow_maf(blocks = 5, hidden = 64, mixture = 4),
                       n_in = rows * 3, d = d)
sets <- lapply(seq_len(n), function(i) {
  k <- sample(3:10, 1)
  cbind(sample(10, k), rnorm(k), runif(k, 0.01, 0.1))
})
scale <- nbi:::fit_input_scale(sets, set_feat)
x_st <- nbi:::encode_input(sets, scale, set_feat, rows)

out <- NULL
for (prec in c("float64", "float32")) for (th in 1:2) {
  rg$precision <- st$precision <- prec
  out <- rbind(out, data.frame(featurizer = "ResNet-GRU (L 50, 32..128 ch, 2 GRU)",
                               precision = prec, threads = th,
                               params = length(nbi:::model_init(rg, 1)),
                               `train samples/s` = round(train_rate(rg, x_rg, theta, batch, th, target)),
                               check.names = FALSE))
  out <- rbind(out, data.frame(featurizer = "set transformer (64, 4 heads, 2 layers)",
                               precision = prec, threads = th,
                               params = length(nbi:::model_init(st, 1)),
                               `train samples/s` = round(train_rate(st, x_st, theta, batch, th, target)),
                               check.names = FALSE))
}
cat(sprintf("load average: %s\n", paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))
print(out[order(out$featurizer, out$precision, out$threads), ], row.names = FALSE)
