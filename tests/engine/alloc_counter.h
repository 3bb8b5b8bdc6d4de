#ifndef VISIONSERVE_TESTS_ENGINE_ALLOC_COUNTER_H_
#define VISIONSERVE_TESTS_ENGINE_ALLOC_COUNTER_H_

#include <cstdint>

// Heap allocations made through any form of operator new in this process so far.
int64_t HeapAllocations();

#endif  // VISIONSERVE_TESTS_ENGINE_ALLOC_COUNTER_H_
