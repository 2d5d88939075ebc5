/* gc/gc.h — the same layer as ../gc.h, for programs that include <gc/gc.h>. */
#include "../gc.h"
