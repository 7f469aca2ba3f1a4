/* Internal to src/nn: the work size below which OpenMP loops stay serial (a parallel region
 * costs microseconds, far more on a loaded machine, so tiny loops run on one thread). */
#ifndef SMOECAST_NN_INTERNAL_H
#define SMOECAST_NN_INTERNAL_H

#define NN_PAR_MIN 32768

#endif
