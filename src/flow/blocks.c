/* The registry of block kinds (flow/block.h): their numbers are their places in
 * FLOW_BLOCK_KINDS. */
#include "flow/block.h"

#define X(name) &flow_block_##name,
const flow_block_kind *const flow_block_kinds[FLOW_N_KINDS] = {FLOW_BLOCK_KINDS};
#undef X
