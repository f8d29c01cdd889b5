/* ASG: a graph-based deep learning framework in C. Umbrella header. */
#ifndef ASG_ASG_H
#define ASG_ASG_H

#include "asg/core.h"
#include "asg/graph.h"
#include "asg/ops.h"
#include "asg/autograd.h"
#include "asg/custom.h"
#include "asg/program.h"
#include "asg/profile.h"
#include "asg/optim.h"
#include "asg/nn.h"
#include "asg/loss.h"
#include "asg/metrics.h"
#include "asg/data.h"
#include "asg/io.h"
#include "asg/hf.h"
#include "asg/lm.h"
#include "asg/tokenizer.h"
#include "asg/onnx.h"
#include "asg/viz.h"
#include "asg/logs.h"
#include "asg/dist.h"

#endif
