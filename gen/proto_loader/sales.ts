import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AppendUploadRequest as _sales_v1_AppendUploadRequest, AppendUploadRequest__Output as _sales_v1_AppendUploadRequest__Output } from './sales/v1/AppendUploadRequest.ts';
import type { AppendUploadResponse as _sales_v1_AppendUploadResponse, AppendUploadResponse__Output as _sales_v1_AppendUploadResponse__Output } from './sales/v1/AppendUploadResponse.ts';
import type { BadRow as _sales_v1_BadRow, BadRow__Output as _sales_v1_BadRow__Output } from './sales/v1/BadRow.ts';
import type { CancelUploadRequest as _sales_v1_CancelUploadRequest, CancelUploadRequest__Output as _sales_v1_CancelUploadRequest__Output } from './sales/v1/CancelUploadRequest.ts';
import type { CancelUploadResponse as _sales_v1_CancelUploadResponse, CancelUploadResponse__Output as _sales_v1_CancelUploadResponse__Output } from './sales/v1/CancelUploadResponse.ts';
import type { DownloadRequest as _sales_v1_DownloadRequest, DownloadRequest__Output as _sales_v1_DownloadRequest__Output } from './sales/v1/DownloadRequest.ts';
import type { DownloadResponse as _sales_v1_DownloadResponse, DownloadResponse__Output as _sales_v1_DownloadResponse__Output } from './sales/v1/DownloadResponse.ts';
import type { FileSummary as _sales_v1_FileSummary, FileSummary__Output as _sales_v1_FileSummary__Output } from './sales/v1/FileSummary.ts';
import type { FinishUploadRequest as _sales_v1_FinishUploadRequest, FinishUploadRequest__Output as _sales_v1_FinishUploadRequest__Output } from './sales/v1/FinishUploadRequest.ts';
import type { GetResultRequest as _sales_v1_GetResultRequest, GetResultRequest__Output as _sales_v1_GetResultRequest__Output } from './sales/v1/GetResultRequest.ts';
import type { GetResultResponse as _sales_v1_GetResultResponse, GetResultResponse__Output as _sales_v1_GetResultResponse__Output } from './sales/v1/GetResultResponse.ts';
import type { SalesServiceClient as _sales_v1_SalesServiceClient, SalesServiceDefinition as _sales_v1_SalesServiceDefinition } from './sales/v1/SalesService.ts';
import type { StartUploadRequest as _sales_v1_StartUploadRequest, StartUploadRequest__Output as _sales_v1_StartUploadRequest__Output } from './sales/v1/StartUploadRequest.ts';
import type { StartUploadResponse as _sales_v1_StartUploadResponse, StartUploadResponse__Output as _sales_v1_StartUploadResponse__Output } from './sales/v1/StartUploadResponse.ts';
import type { UploadChunk as _sales_v1_UploadChunk, UploadChunk__Output as _sales_v1_UploadChunk__Output } from './sales/v1/UploadChunk.ts';
import type { UploadRequest as _sales_v1_UploadRequest, UploadRequest__Output as _sales_v1_UploadRequest__Output } from './sales/v1/UploadRequest.ts';
import type { UploadResponse as _sales_v1_UploadResponse, UploadResponse__Output as _sales_v1_UploadResponse__Output } from './sales/v1/UploadResponse.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  sales: {
    v1: {
      AppendUploadRequest: MessageTypeDefinition<_sales_v1_AppendUploadRequest, _sales_v1_AppendUploadRequest__Output>
      AppendUploadResponse: MessageTypeDefinition<_sales_v1_AppendUploadResponse, _sales_v1_AppendUploadResponse__Output>
      BadRow: MessageTypeDefinition<_sales_v1_BadRow, _sales_v1_BadRow__Output>
      CancelUploadRequest: MessageTypeDefinition<_sales_v1_CancelUploadRequest, _sales_v1_CancelUploadRequest__Output>
      CancelUploadResponse: MessageTypeDefinition<_sales_v1_CancelUploadResponse, _sales_v1_CancelUploadResponse__Output>
      DownloadRequest: MessageTypeDefinition<_sales_v1_DownloadRequest, _sales_v1_DownloadRequest__Output>
      DownloadResponse: MessageTypeDefinition<_sales_v1_DownloadResponse, _sales_v1_DownloadResponse__Output>
      FileSummary: MessageTypeDefinition<_sales_v1_FileSummary, _sales_v1_FileSummary__Output>
      FinishUploadRequest: MessageTypeDefinition<_sales_v1_FinishUploadRequest, _sales_v1_FinishUploadRequest__Output>
      GetResultRequest: MessageTypeDefinition<_sales_v1_GetResultRequest, _sales_v1_GetResultRequest__Output>
      GetResultResponse: MessageTypeDefinition<_sales_v1_GetResultResponse, _sales_v1_GetResultResponse__Output>
      SalesService: SubtypeConstructor<typeof grpc.Client, _sales_v1_SalesServiceClient> & { service: _sales_v1_SalesServiceDefinition }
      StartUploadRequest: MessageTypeDefinition<_sales_v1_StartUploadRequest, _sales_v1_StartUploadRequest__Output>
      StartUploadResponse: MessageTypeDefinition<_sales_v1_StartUploadResponse, _sales_v1_StartUploadResponse__Output>
      UploadChunk: MessageTypeDefinition<_sales_v1_UploadChunk, _sales_v1_UploadChunk__Output>
      UploadRequest: MessageTypeDefinition<_sales_v1_UploadRequest, _sales_v1_UploadRequest__Output>
      UploadResponse: MessageTypeDefinition<_sales_v1_UploadResponse, _sales_v1_UploadResponse__Output>
    }
  }
}

