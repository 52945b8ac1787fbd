/* Featurizers: map a standardised observation (n_in values) to the flow's conditioning
 * vector (n_out values): identity, an MLP (linear + activation per hidden layer, then a
 * linear map to n_out), a ResNet-GRU for sequences, a set transformer for sets. */
#ifndef NBI_FEAT_H
#define NBI_FEAT_H
#include <stddef.h>
#include <stdint.h>
#include "nn/nn.h"

#define FEAT_MAX_LAYERS 16
enum { FEAT_IDENTITY = 0, FEAT_MLP = 1, FEAT_RESNET_GRU = 2, FEAT_SET_TRANSFORMER = 3,
       FEAT_TIMESERIES = 4 };

typedef struct {
    int type, n_in, n_out, act, n_hidden;
    int hidden[FEAT_MAX_LAYERS];
    /* ResNet-GRU: sequence length, input channels, conv blocks (channels of each), kernel,
     * GRU layers (hidden size = channels of the last block) */
    int seq_len, channels, depth, kernel, n_rnn;
    int conv[FEAT_MAX_LAYERS];
    /* set transformer: rows per set, values per row (after the token), distinct tokens,
     * model width, attention heads, blocks, feed-forward width */
    int set_rows, set_values, n_tokens, d_model, heads, tf_layers, ff_hidden;
    /* time series (also set_rows: rows per sample, d_model, heads, tf_layers: MLP layers,
     * ff_hidden: their width): row width, error column, bands, pooling queries, time
     * frequencies (into the spec: the model's data), pooling (0 attention + mean, 1 mean),
     * per-sample scalars given next to the pooled vector (e.g. where a curve's reference
     * epoch lies in the prior's window) */
    int ts_width, ts_has_error, ts_bands, ts_seeds, ts_nfreq, ts_pool, ts_extra;
    const double *ts_freqs;
    /* the rows any ts_cum_n or fewer samples of the data at hand can hold: ts_cum[k] is the
     * sum of the k largest row counts (set by the glue from the data; NULL: k * rows) */
    const size_t *ts_cum;
    int ts_cum_n;
    size_t n_params;
} feat_layout;

int feat_layout_init(feat_layout *F, int type, int n_in, int n_hidden, const int *hidden,
                     int n_out, int act);
int feat_layout_init_resnet_gru(feat_layout *F, int seq_len, int channels, int depth, int kernel,
                                int dim_conv_min, int dim_conv_max, int n_rnn, int n_out);
int feat_layout_init_set_transformer(feat_layout *F, int rows, int values, int n_tokens,
                                     int d_model, int heads, int layers, int hidden, int n_out);
int feat_layout_init_timeseries(feat_layout *F, int rows, int width, int has_error, int bands,
                                int d_model, int heads, int layers, int hidden, int seeds,
                                int n_freq, const double *freqs, int pool, int extra, int n_out);
void feat_init_params(const feat_layout *F, double *params, uint64_t seed);
size_t feat_fwd_work(const feat_layout *F, int B);
size_t feat_bwd_work(const feat_layout *F, int B);
/* returns the B x n_out features (x itself for the identity) */
const double *feat_forward(const feat_layout *F, const double *params, const double *x, int B,
                           double *work, const nn_ctx *cx);
/* accumulates dparams from dfeat (B x n_out); fwd is the work of feat_forward */
void feat_backward(const feat_layout *F, const double *params, const double *x, int B,
                   const double *dfeat, double *dparams, const double *fwd, double *work,
                   const nn_ctx *cx);

/* What each featurizer provides (identity and MLP in feat/mlp.c, ResNet-GRU in
 * feat/resnet_gru.c, set transformer in feat/set_transformer.c): the functions above
 * dispatch through this table by F->type. */
typedef struct {
    void (*init_params)(const feat_layout *F, double *params, uint64_t seed);
    size_t (*fwd_work)(const feat_layout *F, int B);
    size_t (*bwd_work)(const feat_layout *F, int B);
    const double *(*forward)(const feat_layout *F, const double *params, const double *x, int B,
                             double *work, const nn_ctx *cx);
    void (*backward)(const feat_layout *F, const double *params, const double *x, int B,
                     const double *dfeat, double *dparams, const double *fwd, double *work,
                     const nn_ctx *cx);
} feat_ops;
extern const feat_ops feat_ops_identity, feat_ops_mlp, feat_ops_resnet_gru,
    feat_ops_set_transformer, feat_ops_timeseries;
#endif
